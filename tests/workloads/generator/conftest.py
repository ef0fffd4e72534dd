"""Helpers: profile files written into tmp_path from the built-in US profile's text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from workloads.generator.profile import BUILTIN_PROFILE_DIR

US_TEXT = (BUILTIN_PROFILE_DIR / "us.toml").read_text()

WriteProfile = Callable[..., Path]


@pytest.fixture
def write_profile(tmp_path: Path) -> WriteProfile:
    """write_profile("sg", {"old text": "new text"}) -> tmp_path/profiles/sg.toml."""

    def write(name: str = "sg", replace: dict[str, str] | None = None) -> Path:
        text = US_TEXT.replace('id_prefix = "US"', f'id_prefix = "{name.upper()}"')
        for old, new in (replace or {}).items():
            assert old in text, f"test bug: {old!r} is not in the US profile"
            text = text.replace(old, new)
        folder = tmp_path / "profiles"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.toml"
        path.write_text(text)
        return path

    return write
