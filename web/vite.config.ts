// The agents' app, served by agent-app-api at /app/ (API.md §12). Hashed file names under
// assets/ are cached for a year; index.html and the manifest are revalidated every time.
import { defineConfig } from "vite";

export default defineConfig({
  root: "app",
  base: "/app/",
  build: {
    outDir: "../dist/app",
    emptyOutDir: true,
    // No inline script or style: the Content-Security-Policy allows none.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
  },
});
