"""HTTP: one application, its routes table, the hot-route front and the API handlers."""
