"""Mirror dashboards and the Admin control panel: pages, static JS, WebSocket consumers."""
