"""AWS's rules for accounts and their concurrency: names, reservations per account, crossing accounts."""

from __future__ import annotations

from collections.abc import Iterator

from esmsim.errors import Issue, did_you_mean
from esmsim.scenario.functions import Account, Function
from esmsim.scenario.system import System


def account_rules(s: System) -> Iterator[Issue]:
    """Accounts: named where there are several, known, and crossed only where AWS allows it."""
    accounts = s.all_accounts
    # ``account`` at its default is no second statement (a resolved scenario writes it out).
    if s.accounts and "account" in s.model_fields_set and s.account != type(s.account)():
        yield Issue(("account",), "give either account (one account) or accounts (several), not both")
    several = len(accounts) > 1
    for section, entities in (("functions", s.functions), ("sources", s.sources)):
        for name, entity in entities.items():
            owner = entity.account
            if owner is not None and owner not in accounts:
                yield Issue(
                    (section, name, "account"),
                    f"unknown account {owner!r}" + did_you_mean(owner, list(accounts)),
                )
            elif owner is None and several:
                yield Issue(
                    (section, name),
                    f"name its account (account: one of {', '.join(accounts)}): there are several",
                )
    for name, read in s.sources.items():
        for k, granted in enumerate(getattr(read, "read_grants", None) or ()):
            if granted not in accounts:
                yield Issue(
                    ("sources", name, "read_grants", k),
                    f"unknown account {granted!r}" + did_you_mean(granted, list(accounts)),
                )
    for i, m in enumerate(s.mappings):
        if not _accounts_known(s, m.source, m.function):
            continue
        source, fn = s.source_account(m.source), s.function_account(m.function)
        if source is fn:
            continue
        kind = s.sources[m.source].type
        if kind == "dynamodb":
            yield Issue(
                ("mappings", i),
                f"reads DynamoDB stream {m.source!r} from another account; AWS documents cross-account event "
                "source mappings for SQS, Kinesis and Kafka, not DynamoDB streams",
            )
        elif source.region != fn.region:
            yield Issue(
                ("mappings", i),
                f"reads {m.source!r} in {source.region} from a function in {fn.region}; a mapping's source "
                "must be in the function's Region",
            )
        else:
            grants = getattr(s.sources[m.source], "read_grants", None)
            reader = s.account_name(s.functions[m.function].account)
            if grants is not None and reader not in grants:
                yield Issue(
                    ("mappings", i),
                    f"function {m.function!r} of account {reader!r} reads {m.source!r} of another "
                    f"account, whose read_grants ({', '.join(grants) or 'none'}) leave it out: AWS refuses "
                    "the mapping without a resource policy granting the function's role (`esmsim iam` "
                    "prints it)",
                )


def _accounts_known(s: System, source: str, function: str) -> bool:
    """Whether a source's and a function's accounts resolve (the rule above reports those that do not)."""
    if source not in s.sources or function not in s.functions:
        return False
    accounts = s.all_accounts
    owners = (s.sources[source].account, s.functions[function].account)
    return all(o in accounts if o is not None else len(accounts) == 1 for o in owners)


def concurrency_rules(s: System) -> Iterator[Issue]:
    """Reservations and provisioned concurrency within each account's limit."""
    for name, account in s.all_accounts.items():
        mine = {
            f: fn
            for f, fn in s.functions.items()
            if (fn.account == name) or (fn.account is None and len(s.all_accounts) == 1)
        }
        yield from _account_concurrency(account, mine, name if s.accounts else None)


def _account_concurrency(
    account: Account, functions: dict[str, Function], label: str | None
) -> Iterator[Issue]:
    """AWS's reservation limits within one account."""
    of_account, whose = (f" of account {label!r}", "its") if label else ("", "the account's")
    limit, keep = account.concurrency_limit, account.unreserved_minimum
    reserved = {n: f.reserved_concurrency for n, f in functions.items() if f.reserved_concurrency is not None}
    total = sum(reserved.values())
    if reserved and total > limit - keep:
        last = list(reserved)[-1]
        yield Issue(
            ("functions", last, "reserved_concurrency"),
            f"reserved concurrency totals {total} across functions{of_account}, but at most {limit - keep} "
            f"of {whose} {limit} may be reserved ({keep} must stay unreserved)",
        )
    # Provisioned concurrency of unreserved functions comes out of the unreserved pool, all of it
    # together, and AWS still keeps `unreserved_minimum` back.
    room = limit - total - keep
    taken = 0
    for name, fn in functions.items():
        pc = fn.provisioned_concurrency
        if pc == 0:
            continue
        if fn.reserved_concurrency is not None and pc > fn.reserved_concurrency:
            yield Issue(
                ("functions", name, "provisioned_concurrency"),
                f"{pc} exceeds the function's reserved concurrency ({fn.reserved_concurrency})",
            )
        elif fn.reserved_concurrency is None:
            taken += pc
            if taken > room:
                others = taken - pc
                detail = f" ({others} already provisioned by other functions)" if others else ""
                yield Issue(
                    ("functions", name, "provisioned_concurrency"),
                    f"{pc} exceeds the unreserved concurrency available for it ({room - others}){detail}",
                )
