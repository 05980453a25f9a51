"""What the broker reads from a provider's DSP 2025-1 catalogue (Catalog HTTPS Binding): the
page's Catalog and each DCAT Dataset in it, checked against the shape the DSP schemas give
(``catalog-schema.json``, ``dataset-schema.json``) and against Kexin's own terms
(``kexin:dataGrade``, ``kexin:region``, ...), within bounds.

A page that does not hold, or that speaks for another participant (its ``participantId``, an
offer's ``assigner``, a nested catalogue), is refused whole with a reason: the crawler then
keeps none of that provider's answer. Nothing here does I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from policy.operands import Grade, check_region_code

DSP_CONTEXT: Final = "https://w3id.org/dspace/2025/1/context.jsonld"
MAX_DATASETS_PER_PAGE: Final = 1000
MAX_DATASET_BYTES: Final = 64 * 1024
"""A dataset's size in UTF-8 bytes of its canonical JSON (sorted keys, no spaces, the form
stored): a few per cent more room than the same dataset as a connector's pretty-printed page."""
MAX_ID_CHARS: Final = 300
MAX_TEXTS: Final = 10
MAX_TITLE_CHARS: Final = 300
MAX_DESCRIPTION_CHARS: Final = 10_000
MAX_KEYWORDS: Final = 50
MAX_KEYWORD_CHARS: Final = 100
MAX_OFFERS: Final = 50
MAX_SHORT_CHARS: Final = 100


class CatalogueRefusedError(Exception):
    """A provider's catalogue that the broker does not take, and why (``reason``: a code)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class CrawledDataset:
    dataset_id: str
    titles: tuple[str, ...]
    descriptions: tuple[str, ...]
    keywords: tuple[str, ...]
    domain: str | None
    grade: str | None
    region: str | None
    personal_information: bool | None
    version: str | None
    registration_code: str | None
    """TC609's registration code (登记编码), ``kexin:registrationCode``, when the provider gives
    one."""
    document: str
    """The dataset as the provider gave it (offers included), for the broker's own answers:
    its JSON with sorted keys and no spaces (:func:`canonical_json`), the form it is stored
    and compared in. Only this text is kept, not the parsed tree: a crawl holds a provider's
    datasets until it stores them, and 10,000 trees of objects made every garbage collection
    walk them (measured: about 40 % of parsing a page)."""


_GRADES: Final = frozenset(grade.value for grade in Grade)


_CANONICAL: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def canonical_json(node: object) -> str:
    """``node`` as JSON with its keys sorted, no spaces and non-ASCII text as it is: one text
    for one content, whatever the order the provider wrote it in (one encoder for every call:
    making one per dataset was a fifth of the time)."""
    return _CANONICAL.encode(node)


def _refuse(message: str, reason: str = "schema_invalid") -> CatalogueRefusedError:
    return CatalogueRefusedError(reason, message)


def _texts(node: dict[str, Any], key: str, most: int, chars: int, where: str) -> tuple[str, ...]:
    value = node.get(key)
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    if len(values) > most:
        raise _refuse(f"{where}: more than {most} {key} values")
    found = []
    for item in values:
        text = item.get("@value") if isinstance(item, dict) else item
        if not isinstance(text, str) or len(text) > chars:
            raise _refuse(f"{where}: a {key} is a string of at most {chars} characters")
        found.append(text)
    return tuple(found)


def _short(node: dict[str, Any], key: str, where: str) -> str | None:
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SHORT_CHARS:
        raise _refuse(f"{where}: {key} is a string of at most {MAX_SHORT_CHARS} characters")
    return value


def parse_dataset(node: object, provider: str) -> CrawledDataset:
    if not isinstance(node, dict):
        raise _refuse("a dataset is an object")
    dataset_id = node.get("@id")
    if not isinstance(dataset_id, str) or not 0 < len(dataset_id) <= MAX_ID_CHARS:
        raise _refuse(f"a dataset's @id is a string of at most {MAX_ID_CHARS} characters")
    where = f"dataset {dataset_id!r}"
    if node.get("@type") != "Dataset":
        raise _refuse(f"{where}: @type is not Dataset")
    document = canonical_json(node)
    if len(document.encode()) > MAX_DATASET_BYTES:
        raise _refuse(f"{where}: larger than {MAX_DATASET_BYTES} bytes", "too_large")
    offers = node.get("hasPolicy")
    # dataset-schema.json: a Dataset has hasPolicy, 1 or more Offers, each with @id and
    # @type Offer, a permission or a prohibition (rules with an action), and no target
    if not isinstance(offers, list) or not 0 < len(offers) <= MAX_OFFERS:
        raise _refuse(f"{where}: hasPolicy lists 1 to {MAX_OFFERS} offers")
    for offer in offers:
        if not isinstance(offer, dict) or offer.get("@type") != "Offer":
            raise _refuse(f"{where}: every hasPolicy entry is an Offer")
        if not isinstance(offer.get("@id"), str) or "target" in offer:
            raise _refuse(f"{where}: an offer has an @id and no target")
        rules = [offer.get(key) for key in ("permission", "prohibition") if key in offer]
        if not rules or not all(
            isinstance(rule, list)
            and rule
            and all(isinstance(r, dict) and "action" in r for r in rule)
            for rule in rules
        ):
            raise _refuse(f"{where}: an offer has permissions or prohibitions, each an action")
        if offer.get("assigner", provider) != provider:
            raise _refuse(f"{where}: an offer of {offer.get('assigner')!r}", "foreign_datasets")
    distributions = node.get("distribution")
    # dataset-schema.json: a Dataset has a distribution, 1 or more, each with a format and an
    # accessService (a DataService's id, or one)
    if not isinstance(distributions, list) or not 0 < len(distributions) <= MAX_TEXTS:
        raise _refuse(f"{where}: distribution lists 1 to {MAX_TEXTS} distributions")
    for distribution in distributions:
        if (
            not isinstance(distribution, dict)
            or not isinstance(distribution.get("format"), str)
            or not isinstance(distribution.get("accessService"), str | dict)
        ):
            raise _refuse(f"{where}: a distribution has a format and an accessService")
    grade = _short(node, "kexin:dataGrade", where)
    if grade is not None and grade not in _GRADES:
        raise _refuse(f"{where}: kexin:dataGrade {grade!r} is not a data grade")
    region = _short(node, "kexin:region", where)
    if region is not None:
        try:
            check_region_code(region)
        except ValueError as error:
            raise _refuse(f"{where}: kexin:region: {error}") from None
    personal = node.get("kexin:personalInformation")
    if personal is not None and not isinstance(personal, bool):
        raise _refuse(f"{where}: kexin:personalInformation is true or false")
    return CrawledDataset(
        dataset_id=dataset_id,
        titles=_texts(node, "title", MAX_TEXTS, MAX_TITLE_CHARS, where),
        descriptions=_texts(node, "description", MAX_TEXTS, MAX_DESCRIPTION_CHARS, where),
        keywords=_texts(node, "keyword", MAX_KEYWORDS, MAX_KEYWORD_CHARS, where),
        domain=_short(node, "kexin:domain", where),
        grade=grade,
        region=region,
        personal_information=personal,
        version=_short(node, "version", where),
        registration_code=_short(node, "kexin:registrationCode", where),
        document=document,
    )


def parse_catalog(body: object, provider: str) -> list[CrawledDataset]:
    """One page of ``provider``'s catalogue: its datasets, or a refusal."""
    if not isinstance(body, dict) or body.get("@type") != "Catalog":
        raise _refuse("the answer is not a Catalog")
    context = body.get("@context")
    if not isinstance(context, list) or DSP_CONTEXT not in context:
        raise _refuse("the Catalog's @context does not list the DSP 2025-1 context")
    if not isinstance(body.get("@id"), str):
        raise _refuse("the Catalog has no @id")
    if body.get("participantId") != provider:
        raise _refuse(
            f"the Catalog speaks for {str(body.get('participantId'))[:200]!r}, not {provider}",
            "foreign_datasets",
        )
    if "catalog" in body:
        raise _refuse("the Catalog holds other catalogues", "foreign_datasets")
    datasets = body.get("dataset", [])
    if not isinstance(datasets, list):
        raise _refuse("dataset is a list")
    if len(datasets) > MAX_DATASETS_PER_PAGE:
        raise _refuse(f"more than {MAX_DATASETS_PER_PAGE} datasets on a page", "too_large")
    return [parse_dataset(node, provider) for node in datasets]
