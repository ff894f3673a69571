"""A rule's product references checked against the bank's product catalogue.

`product:` and literal product codes or types in conditions (`customer.holds: {contains: fund}`,
`deposit.product.type: wealth`, ...) name data, not vocabulary: the catalogue is what the store
holds, read by the caller and passed in as a value. A name no product has would match nobody,
silently; here it is a problem with its line and the nearest known name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import Problem
from .model import FieldRef, Rule, iter_predicates
from .suggestions import did_you_mean

CODE, TYPE = "code", "type"
#: Fields whose literal operands are product codes or product types, and which.
PRODUCT_VALUED: Mapping[str, tuple[str, ...]] = {
    "customer.holds": (CODE, TYPE),
    "deposit.product_code": (CODE,),
    "deposit.product.product_code": (CODE,),
    "deposit.product.type": (TYPE,),
    "event.product_code": (CODE,),
    "event.product_type": (TYPE,),
}
_CHECKED_OPS = frozenset({"eq", "ne", "in", "not_in", "contains"})


@dataclass(frozen=True)
class ProductCatalogue:
    """The product codes and types the bank's data holds; `unavailable` says why it could not be read."""

    codes: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    unavailable: str | None = None

    @classmethod
    def of(cls, products: Mapping[str, str]) -> "ProductCatalogue":
        """From product code -> product type."""
        return cls(frozenset(products), frozenset(products.values()))

    @property
    def checkable(self) -> bool:
        """Whether references can be judged: products are loaded and could be read."""
        return self.unavailable is None and bool(self.codes)

    def known(self, kinds: Iterable[str]) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for kind in kinds:
            out |= self.codes if kind == CODE else self.types
        return out


@dataclass(frozen=True)
class ProductReference:
    """One product code or type a rule names, and where."""

    value: str
    kinds: tuple[str, ...]
    path: tuple[Any, ...]
    line: int
    field: str


def product_references(rule: Rule) -> list[ProductReference]:
    """Every literal product code or type the rule names (`product:` and its conditions'), in line order."""
    refs = []
    if rule.product:
        refs.append(ProductReference(rule.product, (CODE,), ("product",), rule.line_of(("product",)), "product"))
    goal = rule.goal
    if goal is not None:  # a goal naming no product would never count a conversion
        for value, kind, name in ((goal.product_code, CODE, "product_code"), (goal.product_type, TYPE, "product_type")):
            if value:
                refs.append(ProductReference(value, (kind,), ("goal", name), rule.line_of(("goal", name)),
                                             f"goal.{name}"))
    for pred in iter_predicates(rule.conditions):
        kinds = PRODUCT_VALUED.get(pred.field)
        if kinds is None or pred.op not in _CHECKED_OPS or isinstance(pred.operand, FieldRef):
            continue
        values = pred.operand if isinstance(pred.operand, tuple) else (pred.operand,)
        field = ".".join(str(p) for p in pred.path) or pred.field
        refs += [ProductReference(v, kinds, pred.path, rule.line_of(pred.path), field)
                 for v in values if isinstance(v, str)]
    return sorted(refs, key=lambda ref: ref.line)


def reference_problems(rule: Rule, catalogue: ProductCatalogue) -> list[Problem]:
    """A problem for each product code or type of the rule that no product has (nothing when the
    catalogue cannot judge: see `unchecked_references`)."""
    if not catalogue.checkable:
        return []
    problems = []
    for ref in product_references(rule):
        known = catalogue.known(ref.kinds)
        if ref.value in known:
            continue
        what = "code or type" if len(ref.kinds) > 1 else ref.kinds[0]
        problems.append(Problem(f"no product has the {what} {ref.value!r}{did_you_mean(ref.value, known)}",
                                file=rule.file, line=ref.line, rule=rule.id, field=ref.field))
    return problems


def unchecked_references(rules: Iterable[Rule], catalogue: ProductCatalogue) -> Problem | None:
    """One warning, when there are product references the catalogue cannot judge (no products
    loaded yet, or the database could not be read), naming them."""
    if catalogue.checkable:
        return None
    refs = [(rule, ref) for rule in rules for ref in product_references(rule)]
    if not refs:
        return None
    why = (f"the product catalogue could not be read ({catalogue.unavailable})" if catalogue.unavailable
           else "no products are loaded yet (`campaign-engine import products FILE.csv`)")
    named = ", ".join(f"{rule.file}:{ref.line} {ref.value!r}" for rule, ref in refs[:10])
    more = f" and {len(refs) - 10} more" if len(refs) > 10 else ""
    return Problem(f"{why}: {len(refs)} product reference(s) not checked: {named}{more}")
