"""The API's documentation pages, served with assets from our own node_modules (no CDN)
and an inline script that carries the response's CSP nonce."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.headers import Nonce
from layers.assets import VENDOR_PREFIX

router = APIRouter(include_in_schema=False)
SWAGGER = f"{VENDOR_PREFIX}/swagger-ui"
REDOC = f"{VENDOR_PREFIX}/redoc"


def _page(title: str, head: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title>{head}</head><body>{body}</body></html>"
    )


@router.get("/docs")
def swagger_ui(request: Request, nonce: Nonce) -> HTMLResponse:
    spec = escape(request.app.openapi_url or "/openapi.json")
    return _page(
        f"{request.app.title} — API (接口文档)",
        f'<link rel="stylesheet" href="{SWAGGER}/swagger-ui.css">'
        f'<link rel="icon" href="{SWAGGER}/favicon-32x32.png">',
        '<div id="swagger-ui"></div>'
        f'<script src="{SWAGGER}/swagger-ui-bundle.js"></script>'
        f'<script nonce="{nonce}">window.ui = SwaggerUIBundle({{url: "{spec}", '
        'dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: false, '
        "validatorUrl: null});</script>",
    )


@router.get("/redoc")
def redoc(request: Request, nonce: Nonce) -> HTMLResponse:
    spec = escape(request.app.openapi_url or "/openapi.json")
    return _page(
        f"{request.app.title} — API (接口文档)",
        "",
        '<div id="redoc"></div>'
        f'<script src="{REDOC}/bundles/redoc.standalone.js"></script>'
        f'<script nonce="{nonce}">Redoc.init("{spec}", {{disableSearch: true}}, '
        'document.getElementById("redoc"));</script>',
    )
