"""Is a location inside the jurisdiction? Allowed locations use gcp.resourceLocations values."""

from __future__ import annotations

import re
from collections.abc import Iterable

_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_REGION_GROUP = re.compile(r"^in:([a-z]+-[a-z]+[0-9]+)-locations$")
_ZONE = re.compile(r"^([a-z]+-[a-z]+[0-9]+)-[a-z]$")


def allowed_regions(allowed_locations: Iterable[str]) -> frozenset[str]:
    """Regions admitted by org-policy values: a bare region or its value group in:<r>-locations.

    Other value groups (multi-regions such as in:us-locations) are not expanded: a policy
    that cannot tell where a location is must not admit it.
    """
    regions: set[str] = set()
    for value in allowed_locations:
        value = value.strip().lower()
        group = _REGION_GROUP.match(value)
        if group:
            regions.add(group.group(1))
        elif _REGION.match(value):
            regions.add(value)
    return frozenset(regions)


def location_allowed(location: str, allowed_locations: Iterable[str]) -> bool:
    """A region or zone (any case, optionally 'regions/'/'zones/' prefixed) inside the set."""
    loc = location.strip().lower()
    for prefix in ("regions/", "zones/", "locations/"):
        loc = loc.removeprefix(prefix)
    regions = allowed_regions(allowed_locations)
    zone = _ZONE.match(loc)
    return loc in regions or (zone is not None and zone.group(1) in regions)
