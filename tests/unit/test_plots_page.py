"""The plot page's HTML template: the Vega libraries inlined from the installed package, and DVC's CDN tags kept out."""

from __future__ import annotations

import pytest

from tasks.core.errors import StageError
from tasks.plots import offline_page


def test_the_template_holds_the_three_libraries_and_no_cdn_placeholder():
    scripts = offline_page.vega_scripts()
    template = offline_page.page_template(scripts)
    # Vega, Vega-Lite and vega-embed's release builds, by the globals each defines, in load order.
    for code, defines in zip(scripts, (".vega={}", ".vegaLite={}", ".vegaEmbed="), strict=True):
        assert defines in code
    assert template.index(scripts[0]) < template.index(scripts[1]) < template.index(scripts[2])
    assert "{plot_divs}" in template
    # DVC writes its CDN <script src=...> tags where a template says {scripts}; the page must have none.
    assert "{scripts}" not in template and "<script src=" not in template


def test_a_missing_vega_package_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(offline_page, "VEGA_PACKAGE", "no_such_vega_package")
    with pytest.raises(
        StageError, match=r"^the Vega libraries are not installed \(PyPI package django-js-lib-vega"
    ) as err:
        offline_page.vega_scripts()
    assert "\n" not in str(err.value)
