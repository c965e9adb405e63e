import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The app talks to its own origin; the dev server and `vite preview` pass the API, its
// WebSocket and the metrics on to the Librarian server. The Host header is kept (no
// changeOrigin), so the server sees the page's own origin and accepts its WebSocket.
const target = process.env.LIBRARIAN_URL ?? "http://127.0.0.1:8080";
const proxy = {
  "/api": { target, ws: true },
  "/metrics": { target },
};

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  preview: { proxy },
});
