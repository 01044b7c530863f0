"""API routers, one module per area; each may export a `lifespan(app)` async context manager."""
