import { defineConfig } from "vite";

// The render benchmark page (benchmarks/render.py): the real renderer, markdown
// pipeline and stylesheet, built like the app but into web/dist-bench (not shipped).
// Paths are relative to web/, where `npm run build:bench` runs.
export default defineConfig({
  root: "bench",
  base: "./",
  build: {
    outDir: "../dist-bench",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
  },
});
