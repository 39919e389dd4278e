"""HTTP routes, one module per resource; app.py includes their routers."""
