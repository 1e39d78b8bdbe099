"""Map furniture every page shares: a scale bar in metres only, the locate-me button, and
JSON for a page's data blocks. One home, so that every map behaves the same."""

from __future__ import annotations

import json

from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.template import Template

from layers.assets import VENDOR_PREFIX

LOCATE = f"{VENDOR_PREFIX}/locatecontrol/dist"


class MetricScale(MacroElement):
    """A scale bar in metres only (Folium's ``control_scale`` adds miles and feet too)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        L.control.scale({imperial: false, metric: true, maxWidth: 160})
            .addTo({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self) -> None:
        super().__init__()
        self._name = "MetricScale"


class LocateMe(JSCSSMixin, MacroElement):
    """The locate-me button (npm ``leaflet.locatecontrol``, served by us, not a CDN).

    A refused or failed location is told in the page's notice, not in an ``alert``.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        L.control.locate({
            position: "topleft",
            flyTo: true,
            showPopup: false,
            initialZoomLevel: 18,
            // where the tablet is must not catch the tap meant for the building under it
            circleStyle: {interactive: false},
            markerStyle: {interactive: false},
            compassStyle: {interactive: false},
            strings: {title: {{ this.title|tojson }} || (window.GA ? GA.t("app.locate") : "")},
            onLocationError: function () {
                if (window.GA) {
                    GA.notice({{ this.failed|tojson }} || GA.t("app.locate_failed"), "error");
                }
            },
        }).addTo({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    default_js = [("leaflet_locatecontrol", f"{LOCATE}/L.Control.Locate.min.js")]
    default_css = [("leaflet_locatecontrol_css", f"{LOCATE}/L.Control.Locate.min.css")]

    def __init__(self, title: str = "", failed: str = "") -> None:
        """``title``, ``failed``: the button's and the failure's texts; empty, the shell's
        catalogue gives them in the user's language (app.locate, app.locate_failed)."""
        super().__init__()
        self._name = "LocateMe"
        self.title = title
        self.failed = failed


def json_for_script(value: object) -> str:
    """JSON safe inside <script type="application/json">: no '<', '>' or '&' that could end
    the element (the browser never runs such a block; the CSP allows it as data)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
