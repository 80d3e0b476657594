"""What a portal config means: the semantic checks, one module per section, reporting to one `Problems`.

`build_ruleset` runs them all and builds the core's rule set from a valid file.
"""

from sync.config.checks.problems import Locator, Problems
from sync.config.checks.ruleset import build_ruleset, builtin_free_mail
from sync.config.checks.schedule import parse_duration

__all__ = ["Locator", "Problems", "build_ruleset", "builtin_free_mail", "parse_duration"]
