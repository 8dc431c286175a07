"""Runs many gcloud command lines in one Python process, for the deploy tests.

gcloud spends seconds of CPU starting and loading each command group; the
deploy tests check dozens of command lines, so they share one process. Each
request is a JSON line {"argv": [...], "dir": "..."} on standard input; each
answer is a JSON line {"code": N, "output": "..."}: the exit status gcloud
would have exited with and what it printed. A command reads nothing from
standard input (it gets /dev/null, as the tests' gcloud did).

Started as: PYTHON gcloud_check.py CLOUDSDK_ROOT
"""
import json
import os
import sys
import tempfile

requests = os.fdopen(os.dup(0), "r")
answers = os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
sys.stdin = open(os.devnull)

sys.path.insert(0, os.path.join(sys.argv[1], "lib"))
import gcloud  # noqa: E402  the SDK's own entry module

gcloud._fix_google_module()
from googlecloudsdk import gcloud_main  # noqa: E402

cli = gcloud_main.CreateCLI([])
home = os.getcwd()
for line in requests:
    req = json.loads(line)
    os.chdir(req.get("dir") or home)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        code = 0
        try:
            cli.Execute(req["argv"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException as e:  # noqa: B036  gcloud's own errors
            code = 1
            print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    os.close(saved[0])
    os.close(saved[1])
    answers.write(json.dumps({"code": code, "output": text}) + "\n")
    answers.flush()
