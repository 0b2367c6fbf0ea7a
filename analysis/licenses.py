"""Licence families and whether a merge of two models may be released: a small table, as data.

A merge is a derivative of both parents, so it must satisfy both licences. Families:
- `permissive` (Apache-2.0, MIT, BSD, CC-BY, ...): no terms beyond attribution; the other parent's apply.
- `copyleft` (GPL, AGPL, LGPL, CC-BY-SA, ...): the derivative must carry the same licence and no further
  restrictions, so it cannot be combined with a different copyleft, non-commercial or model-specific licence.
- `non-commercial` (CC-BY-NC-*): the merge may not be used commercially.
- `model-specific` (Llama 2/3, Gemma, ...): the vendor's use policy carries over to the merge; two
  different vendors' licences both apply (compatible in principle, to be checked by a person).
Unknown or missing licences are reported as such, never assumed compatible.
"""

from __future__ import annotations

from dataclasses import dataclass

# Hub licence id (lower case) -> family.
LICENCE_FAMILIES: dict[str, str] = {
    **dict.fromkeys(
        ("apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "isc", "unlicense",
         "cc0-1.0", "cc-by-2.0", "cc-by-3.0", "cc-by-4.0", "odc-by", "pddl", "bsl-1.0", "zlib", "wtfpl",
         "postgresql", "ncsa", "afl-3.0", "artistic-2.0", "ecl-2.0", "ms-pl", "mpl-2.0", "openrail",
         "bigscience-openrail-m", "creativeml-openrail-m", "openrail++", "bigcode-openrail-m"),
        "permissive",
    ),
    **dict.fromkeys(
        ("gpl", "gpl-2.0", "gpl-3.0", "agpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "lgpl-lr", "cc-by-sa-3.0",
         "cc-by-sa-4.0", "gfdl", "odbl", "eupl-1.1", "epl-1.0", "epl-2.0", "osl-3.0", "cc-by-nd-4.0"),
        "copyleft",
    ),
    **dict.fromkeys(
        ("cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
         "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "c-uda", "deepfloyd-if-license"),
        "non-commercial",
    ),
    **dict.fromkeys(
        ("llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma", "bigscience-bloom-rail-1.0",
         "apple-ascl", "apple-amlr", "intel-research", "lgpl-lr", "fair-noncommercial-research-license"),
        "model-specific",
    ),
}  # fmt: skip
# Copyleft licences that also forbid derivatives outright.
NO_DERIVATIVES = frozenset({"cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0"})

# Verdicts, best first; only `conflict` lowers a suggestion's score (see analysis.merge.SCORE_WEIGHTS).
VERDICTS = ("compatible", "restricted", "unknown", "conflict")


@dataclass(frozen=True)
class LicenceVerdict:
    """Whether two licences allow releasing a merge, and a sentence saying why."""

    verdict: str  # one of VERDICTS
    reason: str


def licence_family(licence: str | None) -> str:
    """The family of a Hub licence id: permissive | copyleft | non-commercial | model-specific | unknown."""
    if not licence:
        return "unknown"
    return LICENCE_FAMILIES.get(licence.strip().lower(), "unknown")


def licence_verdict(a: str | None, b: str | None) -> LicenceVerdict:
    """May a merge of a model under licence `a` and one under `b` be released, and on what terms?"""
    la, lb = (x.strip().lower() if x else None for x in (a, b))
    fa, fb = licence_family(la), licence_family(lb)
    if la in NO_DERIVATIVES or lb in NO_DERIVATIVES:
        nd = la if la in NO_DERIVATIVES else lb
        return LicenceVerdict("conflict", f"licence {nd} forbids derivatives: a merge may not be released")
    if "unknown" in (fa, fb):
        which = " and ".join(f"{x or 'none'}" for x, f in ((la, fa), (lb, fb)) if f == "unknown")
        return LicenceVerdict("unknown", f"licence unknown ({which}): check the terms before releasing")
    if la == lb:
        if fa == "permissive":
            return LicenceVerdict("compatible", f"licences compatible (both {la})")
        return LicenceVerdict("restricted", f"both {la}: the merge carries its terms ({fa})")
    families = {fa, fb}
    if "copyleft" in families and families != {"copyleft", "permissive"}:
        other = fb if fa == "copyleft" else fa
        cop = la if fa == "copyleft" else lb
        if other == "copyleft":
            return LicenceVerdict("conflict", f"licence conflict: {la} and {lb} each require their own terms")
        return LicenceVerdict(
            "conflict",
            f"licence conflict: {cop} allows no added restrictions, {lb if cop == la else la} adds them",
        )
    if families == {"permissive"}:
        return LicenceVerdict("compatible", f"licences compatible ({la} + {lb}, both permissive)")
    if "permissive" in families:
        strict, fam = (la, fa) if fa != "permissive" else (lb, fb)
        return LicenceVerdict("restricted", f"licences compatible; the merge carries {strict} terms ({fam})")
    if families == {"model-specific"}:
        return LicenceVerdict(
            "restricted", f"both {la} and {lb} terms apply to the merge: check them together"
        )
    nc = la if fa == "non-commercial" else lb
    return LicenceVerdict("restricted", f"licences compatible; the merge is non-commercial ({nc})")
