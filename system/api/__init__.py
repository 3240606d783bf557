"""HTTP routers, one per audience: health, public, admin, monitoring."""
