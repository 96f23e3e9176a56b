"""YAML mappings that remember the line of every key, so a configuration error can name the line to fix.

Shared by the registry, the console's users file and the notification config: the people editing those files
are plant engineers and duty managers, and "line 42: unknown channel" is what lets them fix it alone.
"""

from __future__ import annotations

import yaml


class LineDict(dict):
    line: int = 0  # 1-based line of the mapping itself
    key_lines: dict[str, int]  # str(key) -> 1-based line of that key


class LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    d = LineDict()
    d.line = node.start_mark.line + 1
    d.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        d[key] = loader.construct_object(value_node, deep=True)
        d.key_lines[str(key)] = key_node.start_mark.line + 1
    return d


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
