// The test page for tests/e2e/test_aisdk.py, served there under /aisdk-test/ on
// tokenrelay's own origin (Playwright fulfils these files; the API calls go through).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/aisdk-test/',
  build: { outDir: 'dist', emptyOutDir: true },
});
