"""Lighter-compatible API: `/api/v1/account`, `/api/v1/accountActiveOrders`, `GET /` Status and `/stream`,
served from our store in Lighter's shapes so bots built on the official lighter-sdk work unchanged."""
