"""A lineage record for a person: the chain from the artifact back to the raw archive, then where each run ran."""

from __future__ import annotations


def _short(entry: dict) -> str:
    """path (md5 prefix[, n files])."""
    extra = f", {entry['nfiles']} files" if "nfiles" in entry else ""
    return f"{entry['path']} (md5 {entry['md5'][:12]}{extra})"


def _flat(params: dict, prefix: str = "") -> list[str]:
    """Nested params as key=value strings."""
    items = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        items += _flat(value, f"{name}.") if isinstance(value, dict) else [f"{name}={value}"]
    return items


def _run_lines(label: str, facts: dict | None) -> list[str]:
    """Where and when one run ran, from its run facts (None: the file is not in the workspace)."""
    if facts is None:
        return ["", f"{label}: run facts not in the workspace"]
    git = facts["git"]
    dirty = f"dirty: {', '.join(git['changed'])}" if git["dirty"] else "clean"
    return [
        "",
        f"{label}: ran at {facts['written_at']}, git {git['commit']} ({dirty})",
        "  versions: " + ", ".join(f"{k} {v}" for k, v in facts["versions"].items()),
        "  hardware: " + ", ".join(f"{k} {v}" for k, v in facts["hardware"].items()),
        f"  Prefect flow run: {facts['prefect_flow_run_id'] or 'none (not run by the flow)'}",
    ]


def class_lines(classes: dict) -> list[str]:
    """The class list a record holds: each class with its target, and what the submission's columns hold."""
    names = classes["classes"]
    layout = classes["submission"]
    header, columns = layout["header"], layout["columns"]
    if len(header) == 2 and len(columns) == 1:  # two classes in one column: Dogs vs. Cats' `id,label`
        holds = f"{header[1]} = P({columns[0]})"
    else:
        holds = "one probability column per class"
    source = f", from {layout['source']}" if layout.get("source") else ""
    return [
        f"classes ({len(names)}, target = position): " + ", ".join(f"{i} {name}" for i, name in enumerate(names)),
        f"submission header: {','.join(header)} ({holds}{source})",
    ]


def render(record: dict, runs: list[tuple[str, dict | None]]) -> str:
    """The chain from the artifact back to the raw archive, then each run's facts (label, facts), for a person."""
    art = record["artifact"]
    lines = [f"{art['path']}  sha256 {art['sha256']}  md5 {art['md5']}", ""]
    stages = [record["stage"], *reversed(record.get("upstream", []))]
    for link in stages:
        params = ", ".join(_flat(link.get("params", {})))
        lines.append(f"<- {link['name']}: `{link.get('cmd')}`" + (f"  [{params}]" if params else ""))
        for dep in link.get("deps", []):
            lines.append(f"     from {_short(dep)}")
        for out in link.get("outs", []):
            lines.append(f"     made {_short(out)}")
    source = record.get("source")
    if source:
        origin = ", ".join(f"{k} {v}" for k, v in source.items() if k != "archive")
        lines += ["", f"raw archive: {origin}; {_short(source['archive'])}"]
    if "classes" in record:
        lines += class_lines(record["classes"])
    if "split" in record:
        lines.append("split: " + ", ".join(_flat(record["split"])))
    if "features" in record:
        vgg16 = record["features"]["vgg16"]
        lines.append(
            f"VGG16 weights: {vgg16['identity']}" + (f", sha256 {vgg16['sha256']}" if "sha256" in vgg16 else "")
        )
    for path, values in record.get("metrics", {}).items():
        lines.append(f"metrics {path}: " + ", ".join(_flat(values)))
    for label, facts in runs:
        lines += _run_lines(label, facts)
    return "\n".join(lines)
