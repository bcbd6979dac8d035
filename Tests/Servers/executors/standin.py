#!/usr/bin/env python3
"""Stands in for the kubectl / docker *binaries* where no cluster or engine exists (no real one is available on
the test machine). It records every argv it receives into a JSON state file and answers in the real tools'
output formats, so the tests check the exact argv rollbackd builds, its parsing of real-format output, and how
it surfaces real-format errors. It is not a cluster: it only keeps the little state the answers need.

  standin.py kubectl STATE.json ARGS...
  standin.py docker  STATE.json ARGS...

STATE.json for kubectl: {"deployments": {"web": {"namespace": "prod", "revisions": [[1, null], [2, "cause"]]}},
                         "statusFails": false, "calls": []}
STATE.json for docker:  {"services": {"web": {"image": "...", "previous": "..." or null, "state": "..." or null}},
                         "calls": []}
"""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, state):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.rename(tmp, path)


def fail(msg, code=1):
    sys.stderr.write(msg + "\n")
    return code


def kubectl(state, args):
    namespace = "default"
    rest = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-n", "--namespace"):
            namespace = args[i + 1]
            i += 2
            continue
        if a == "--context":
            state.setdefault("contexts", []).append(args[i + 1])
            i += 2
            continue
        rest.append(a)
        i += 1
    if len(rest) < 3 or rest[0] != "rollout":
        return fail(f'error: unknown command "{" ".join(rest)}" for "kubectl"')
    verb, resource = rest[1], rest[2]
    if not resource.startswith("deployment/"):
        return fail(f'error: the server doesn\'t have a resource type "{resource.split("/")[0]}"')
    name = resource.split("/", 1)[1]
    dep = state["deployments"].get(name)
    if dep is None or dep.get("namespace", "default") != namespace:
        return fail(f'Error from server (NotFound): deployments.apps "{name}" not found')
    revs = dep["revisions"]
    if verb == "history":
        print(f"deployment.apps/{name} ")
        width = max(len("REVISION"), *(len(str(r[0])) for r in revs)) + 2
        print("REVISION".ljust(width) + "CHANGE-CAUSE")
        for number, cause in sorted(revs):
            print(str(number).ljust(width) + (cause if cause else "<none>"))
        print()
        return 0
    if verb == "undo":
        to = None
        for a in rest[3:]:
            if a.startswith("--to-revision="):
                to = int(a.split("=", 1)[1])
        if to is None:
            to = sorted(revs)[-2][0]
        match = [r for r in revs if r[0] == to]
        if not match:
            return fail(f"error: unable to find specified revision {to} in history")
        newest = max(r[0] for r in revs)
        dep["revisions"] = [r for r in revs if r[0] != to] + [[newest + 1, match[0][1]]]
        print(f"deployment.apps/{name} rolled back")
        return 0
    if verb == "status":
        if state.get("statusFails"):
            print(f'Waiting for deployment "{name}" rollout to finish: 1 of 3 updated replicas are available...')
            return fail('error: deployment "' + name + '" exceeded its progress deadline')
        print(f'Waiting for deployment "{name}" rollout to finish: 2 of 3 updated replicas are available...')
        print(f'deployment "{name}" successfully rolled out')
        return 0
    return fail(f'error: unknown command "{verb}" for "kubectl rollout"')


def docker(state, args):
    if args[:2] == ["service", "inspect"]:
        name = args[-1]
        svc = state["services"].get(name)
        if svc is None:
            print("[]")
            return fail(f"Error: no such service: {name}")
        fmt = args[args.index("--format") + 1] if "--format" in args else None
        if fmt is None:
            return fail("standin: only --format inspections are answered")
        print(f'{svc["image"]}|{svc.get("previous") or ""}|{svc.get("state") or ""}')
        return 0
    if args[:2] == ["service", "update"]:
        name = args[-1]
        svc = state["services"].get(name)
        if svc is None:
            return fail(f"Error response from daemon: service {name} not found")
        if "--rollback" in args:
            if not svc.get("previous"):
                return fail(f"Error response from daemon: rpc error: code = FailedPrecondition desc = service {name} does not have a previous spec")
            svc["image"], svc["previous"] = svc["previous"], svc["image"]
            svc["state"] = "rollback_completed"
            print(name)
            print("rollback: manually requested rollback ")
            print("overall progress: rolling back update: 1 out of 1 tasks ")
            print("verify: Service converged ")
            return 0
        if "--image" in args:
            image = args[args.index("--image") + 1]
            svc["previous"], svc["image"] = svc["image"], image
            svc["state"] = "completed"
            print(name)
            print("overall progress: 1 out of 1 tasks ")
            print("verify: Service converged ")
            return 0
    return fail(f"standin: unsupported docker {' '.join(args)}")


def main():
    tool, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    state = load(path)
    state.setdefault("calls", []).append(args)
    code = {"kubectl": kubectl, "docker": docker}[tool](state, args)
    save(path, state)
    sys.exit(code)


if __name__ == "__main__":
    main()
