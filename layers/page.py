"""A Folium page that a strict Content-Security-Policy allows, with no way in for our data.

The API sends ``script-src 'self' 'nonce-…'`` (api/headers.py): only the inline scripts
that these templates write carry the response's nonce, so a script that data smuggled into
the page would not run even if escaping failed. The nonce is set here, in the templates,
never by rewriting the finished HTML (which would bless an injected script too).

Text of ours or of imported files goes into the page as template *values*, never as template
source: ``branca.element.Element(text)`` compiles ``text`` as Jinja, so a community code
``{{ … }}`` would run on the server. Use ``Fragment`` for ready-made markup.

Branca itself does exactly that with every Folium element: ``MacroElement.render`` puts the
*output* of an element's macros (a GeoJson layer's script with its features, a popup's or a
tooltip's text) into the page as ``Element(output)``, which is compiled and rendered again
when the page is. A building named ``{{ 7*7 }}`` then showed as ``49``, and a name written
to reach Python's objects through Jinja would have run code on the server. Importing this
module replaces that method (:func:`_render_macros`, and Folium's ``Popup.render``, which
does the same): the output goes in as a ``Fragment``,
rendered once, never compiled. Every map module imports this one (``layers/__init__.py``
too), and ``tests/test_layers_no_template_injection.py`` checks it on every kind of
element our pages use.
"""

from __future__ import annotations

from typing import Any

import folium
from branca.element import Element, Figure, MacroElement
from folium.template import Template


class Fragment(Element):
    """Ready-made HTML put into the page as it is (not compiled as a template)."""

    _template = Template("{{ this.markup }}")

    def __init__(self, markup: str) -> None:
        super().__init__()
        self._name = "Fragment"
        self.markup = markup


def _render_macros(self: MacroElement, **kwargs: Any) -> None:
    """``MacroElement.render`` with the macros' output kept as text (see the module's text)."""
    figure = self.get_root()
    if not isinstance(figure, Figure):
        raise TypeError("a map element can only be rendered inside a page (Figure)")
    macros = self._template.module.__dict__
    for part in ("header", "html", "script"):
        macro = macros.get(part)
        if macro is not None:
            getattr(figure, part).add_child(
                Fragment(str(macro(self, kwargs))), name=self.get_name()
            )
    for element in self._children.values():
        element.render(**kwargs)


def _render_popup(self: folium.Popup, **kwargs: Any) -> None:
    """``folium.Popup.render``, which does the same with its own template: kept as text."""
    for child in self._children.values():
        child.render(**kwargs)
    figure = self.get_root()
    if not isinstance(figure, Figure):
        raise TypeError("a popup can only be rendered inside a page (Figure)")
    text = Fragment(self._template.render(this=self, kwargs=kwargs))
    figure.script.add_child(text, name=self.get_name())


MacroElement.render = _render_macros  # type: ignore[method-assign]
folium.Popup.render = _render_popup  # type: ignore[method-assign]


class Page(Figure):
    """Branca's page with the title escaped and the page script carrying the nonce."""

    html_lang = "zh"  # the shell sets the user's language

    _template = Template(
        "<!DOCTYPE html>\n"
        '<html lang="{{ "en" if this.html_lang == "en" else "zh-CN" }}">\n'
        "<head>\n"
        "{% if this.title %}<title>{{ this.title|e }}</title>{% endif %}"
        "    {{ this.header.render(**kwargs) }}\n"
        "</head>\n"
        "<body>\n"
        "    {{ this.html.render(**kwargs) }}\n"
        "</body>\n"
        '<script nonce="{{ kwargs.nonce|e }}">\n'
        "    {{ this.script.render(**kwargs) }}\n"
        "</script>\n"
        "</html>\n"
    )


# Folium's Map header (folium 0.20), its one inline script with the nonce.
_MAP_HEADER = Template("""
    {% macro header(this, kwargs) %}
        <meta name="viewport" content="width=device-width,
            initial-scale=1.0, maximum-scale=1.0, user-scalable=no" />
        <style>
            #{{ this.get_name() }} {
                position: {{this.position}};
                width: {{this.width[0]}}{{this.width[1]}};
                height: {{this.height[0]}}{{this.height[1]}};
                left: {{this.left[0]}}{{this.left[1]}};
                top: {{this.top[0]}}{{this.top[1]}};
            }
            .leaflet-container { font-size: {{this.font_size}}; }
        </style>
        <style>html, body { width: 100%; height: 100%; margin: 0; padding: 0; }</style>
        <style>#map { position:absolute; top:0; bottom:0; right:0; left:0; }</style>
        <script nonce="{{ kwargs.nonce|e }}">
            L_NO_TOUCH = {{ this.global_switches.no_touch|tojson }};
            L_DISABLE_3D = {{ this.global_switches.disable_3d|tojson }};
        </script>
    {% endmacro %}
""")


class Map(folium.Map):
    """``folium.Map`` on a ``Page``, its header script carrying the nonce.

    Only Leaflet itself is loaded: Folium's other defaults (jQuery, Bootstrap, Font
    Awesome, awesome-markers: about 550 kB and seven blocking requests) serve nothing our
    pages use — their markers are Leaflet's own (``DivIcon``, circle markers).
    """

    default_js = [("leaflet", "leaflet")]
    default_css = [("leaflet_css", "leaflet_css")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        Page().add_child(self)

    def render(self, **kwargs: Any) -> None:
        super().render(**kwargs)
        # Same name, same place: replaces the header Folium's own template just added.
        header = _MAP_HEADER.module.header(self, kwargs)  # type: ignore[attr-defined]
        self.get_root().header.add_child(Fragment(str(header)), name=self.get_name())
