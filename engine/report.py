"""Readable tables for profiles."""


def print_profile(prof, top=25, file=None):
    nodes = prof["nodes"]
    total = prof["total_ms"] or 1e-9
    by_op = {}
    for n in nodes:
        key = ("+".join([n["op"]] + n.get("fused", [])), n["backend"])
        t, c = by_op.get(key, (0.0, 0))
        by_op[key] = (t + n["ms"], c + 1)
    print(f"{'op':<22}{'backend':<9}{'count':>6}{'ms':>10}{'%':>7}", file=file)
    for (op, backend), (t, c) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
        print(f"{op:<22}{backend:<9}{c:>6}{t:>10.3f}{100 * t / total:>6.1f}%", file=file)
    print("\nslowest nodes:", file=file)
    for n in sorted(nodes, key=lambda n: -n["ms"])[:top]:
        op = "+".join([n["op"]] + n.get("fused", []))
        print(f"  {n['node'][:40]:<42}{op:<18}{n['backend']:<8}{n['ms']:>9.3f} ms", file=file)
    copies = prof["copies"]
    if copies:
        ct = sum(c["ms"] for c in copies)
        print(f"\ncopies between backends: {len(copies)}, {ct:.3f} ms", file=file)
        for c in sorted(copies, key=lambda c: -c["ms"])[:10]:
            print(f"  {c['value'][:40]:<42}{c['from']}->{c['to']:<10}{c['ms']:>9.3f} ms", file=file)
    print(f"\ntotal {total:.3f} ms", file=file)
