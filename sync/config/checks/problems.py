"""The one problem collector every section's checks report to, each problem placed at its line in the file."""

from __future__ import annotations

from sync.errors import ConfigProblem
from sync.yamlsource import Lines, Path_, path_text


class Locator:
    """Turns a field path into a problem at the line that sets it (or the nearest enclosing key that has one)."""

    def __init__(self, file: str, lines: Lines) -> None:
        self.file, self.lines = file, lines

    def __call__(self, path: Path_, message: str) -> ConfigProblem:
        probe = path
        while probe not in self.lines and probe:
            probe = probe[:-1]
        file, line = self.lines.get(probe, (self.file, None))
        return ConfigProblem(file, line, path_text(path), message)


class Problems:
    """Every problem found in one file, in the order the checks find them: all are reported at once."""

    def __init__(self, locate: Locator) -> None:
        self.locate = locate
        self.items: list[ConfigProblem] = []

    def error(self, path: Path_, message: str) -> None:
        self.items.append(self.locate(path, message))

    def __len__(self) -> int:
        return len(self.items)
