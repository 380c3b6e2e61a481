/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The page is served by the Python server (src/tokenrelay/server/page.py): index.html at
// / and /c/{id}, hashed files under /assets/. Its CSP forbids inline script and style,
// so nothing may be inlined: assetsInlineLimit 0, and the module preload polyfill
// (an inline script) is off.
export default defineConfig({
  base: "/",
  build: {
    outDir: "../src/tokenrelay/web/static",
    assetsDir: "assets",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against `tokenrelay serve --port 8123`
    proxy: { "/api": "http://127.0.0.1:8123" },
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.ts"],
    // The property tests do a fixed amount of work (fast-check runs); Vitest's 5 s
    // default is a wall-clock limit that two busy cores can cross (seen once). A hang
    // still fails, later.
    testTimeout: 60_000,
  },
});
