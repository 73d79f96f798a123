"""Prizeflow's web console: a backend-for-frontend over the services' APIs. It holds no business rule and no
database: the services decide and enforce; the console signs people in (OIDC code + PKCE), relays their token
and shows what their roles may see."""
