// The web apps (API.md §12), one build each: the agents' app (`WEB_APP=app`, the default),
// served by agent-app-api at /app/, and the operators' console (`WEB_APP=console`), served by
// the dispatcher at /console/. Hashed file names under assets/ are cached for a year;
// index.html and the manifest are revalidated every time.
import { defineConfig } from "vite";

const app = process.env.WEB_APP ?? "app";

export default defineConfig({
  root: app,
  base: `/${app}/`,
  build: {
    outDir: `../dist/${app}`,
    emptyOutDir: true,
    // No inline script or style: the Content-Security-Policy allows none.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
  },
});
