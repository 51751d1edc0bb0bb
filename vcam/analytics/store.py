"""The analytics rules, kept in `<data_dir>/analytics.json`: one source of truth for the engine,
the ONVIF Analytics service and the web page, which edit it; the engine follows it live.

The configuration's `[[analytics.rules]]` are the starting set. Rules created, changed or
deleted later are kept in the file. When the configured rules changed since the file was
written (someone edited the configuration), they replace the configured ones kept there, and
rules that clients created stay.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

from vcam.analytics.rules import Rule, RuleError, RuleSet, rule_from_flat
from vcam.config import AnalyticsConfig, AnalyticsRuleConfig
from vcam.persist import SettingsStore, read_json

log = logging.getLogger(__name__)

FILE_NAME = "analytics.json"


def configured_rules(cfg: AnalyticsConfig) -> tuple[Rule, ...]:
    """The configuration's rules (already validated by vcam.config)."""
    defaults = dataclasses.asdict(AnalyticsRuleConfig())
    return tuple(rule_from_flat(dataclasses.asdict(rc), defaults) for rc in cfg.rules)


def reconcile(kept: RuleSet, configured: tuple[Rule, ...]) -> RuleSet:
    """The kept set fitted to the configuration now: unchanged configuration, the file wins;
    otherwise the configured rules, then the kept rules a client created."""
    if kept.configured == configured:
        return kept
    log.info("analytics rules in the configuration changed: they replace the kept ones")
    old_names = {r.name for r in kept.configured} | {r.name for r in configured}
    created = tuple(r for r in kept.rules if r.name not in old_names)
    return RuleSet(configured + created, configured, kept.revision)


class AnalyticsRuleStore(SettingsStore[RuleSet]):
    """The rule set, written to `path` (if any) before every change takes effect; a refused
    change (RuleError, OSError) changes nothing. Subscribers get each new RuleSet."""

    def __init__(self, rules: RuleSet, path: Path | None = None) -> None:
        super().__init__(rules, path)
        self.defaults = RuleSet(rules.configured, rules.configured)

    @classmethod
    def load(cls, path: Path | None, configured: tuple[Rule, ...]) -> AnalyticsRuleStore:
        """The rules kept in `path` fitted to the configured ones (those alone when there is no
        file yet). A damaged file: RuleError naming it."""
        fresh = RuleSet(configured, configured)
        if path is None:
            return cls(fresh)
        try:
            data = read_json(path)
            rules = fresh if data is None else reconcile(RuleSet.from_json(data), configured)
        except (OSError, ValueError) as exc:  # RuleError is a ValueError
            raise RuleError("", f"damaged analytics rules file {path}: {exc}") from None
        return cls(rules, path)

    def create(self, rules: Iterable[Rule]) -> RuleSet:
        new = tuple(rules)
        return self.change(lambda s: s.created(new))

    def modify(self, rules: Iterable[Rule]) -> RuleSet:
        new = tuple(rules)
        return self.change(lambda s: s.modified(new))

    def delete(self, names: Iterable[str]) -> RuleSet:
        gone = tuple(names)
        return self.change(lambda s: s.deleted(gone))

    def reset(self) -> RuleSet:
        """Factory defaults: the configured rules only."""
        return self.change(lambda _: self.defaults)
