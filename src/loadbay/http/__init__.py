"""HTTP machinery shared by the native API and the API profiles: keys, bodies, problems, the server."""
