"""A client for renderfarm's API (the Renderjuice external API v1), in plain
Python: the standard library only, no Blender.

The Blender add-on talks to the farm through it, and pipeline scripts can
import it or run it:

    python3 -m renderfarm_client submit FILE [--frames 1-10] [--wait] [--download DIR]
    python3 -m renderfarm_client status JOB [--wait]
    python3 -m renderfarm_client jobs
    python3 -m renderfarm_client cancel JOB
    python3 -m renderfarm_client download JOB DIR

FILE is a .blend or a project .zip (`renderfarm pack` makes one). The
server and the API key come from --server and --api-key, or from
RENDERFARM_SERVER and RENDERFARM_API_KEY. The module is in the add-on's zip:
`PYTHONPATH=renderfarm-addon.zip/renderfarm python3 -m renderfarm_client …`
runs it straight from there.

    client = Client("http://farm:8080", os.environ["RENDERFARM_API_KEY"])
    job = client.submit("shot.zip", {"frameRanges": ["1-24"]})
    job = client.wait(job["id"])
    client.download_frames(job["id"], lambda output: os.path.join("frames", output["fileName"]))
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BASE_PATH = "/api/external/v1"

# A job in one of these statuses changes no more.
FINAL = ("completed", "failed", "canceled")

# How many times a request refused for the rate limit (429) is sent again,
# after the Retry-After the farm asks for.
RATE_LIMIT_RETRIES = 5

# Bytes read and written at a time when uploading and downloading.
CHUNK = 1 << 20


class APIError(Exception):
    """An answer of the farm other than success: status is the HTTP status,
    code the farm's error code, message what to do about it."""

    def __init__(self, status, code, message):
        super().__init__("%s (%s, HTTP %d)" % (message, code, status))
        self.status = status
        self.code = code
        self.message = message


class JobEnded(Exception):
    """Waiting for a status the job will never reach: it ended."""

    def __init__(self, job):
        reason = job.get("failedReason") or {}
        detail = ": ".join(x for x in (reason.get("name"), reason.get("message")) if x)
        super().__init__("job %s ended %s%s" % (job["id"], job["status"], (": " + detail) if detail else ""))
        self.job = job


def file_type(path):
    """The upload's fileType for a path: blend or zip."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".blend":
        return "blend"
    if ext == ".zip":
        return "zip"
    raise ValueError("%s is neither a .blend nor a .zip" % path)


# Characters that drive a terminal rather than show on it: the C0 and C1
# controls and DEL, the bidi marks, embeddings, overrides and isolates, and
# lone surrogates (which a JSON answer may hold and no terminal can show).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _escape_char(match):
    ch = match.group()
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    return ("\\x%02x" if code < 0x80 else "\\u%04x") % code


def printable(text):
    """text from a job, a file or the farm (a name, a path, a warning, a
    failure's reason) as it may be printed to a terminal: every character
    that would drive the terminal instead of showing (an escape code that
    clears the screen or sets the clipboard, a newline that forges a line,
    a bidi override) written as Go and the renderfarm command write it,
    \\x1b, \\n, \\u202e. Blender allows any character in a name, and a
    .blend may come from anyone."""
    return _UNPRINTABLE.sub(_escape_char, str(text))


def safe_name(name):
    """A file name from the farm, reduced to a plain name that stays in the
    folder it is written to."""
    name = os.path.basename(name.replace("\\", "/"))
    if name in ("", ".", "..") or name.startswith("."):
        raise ValueError("the farm named a file %r, which is not a plain file name" % name)
    return name


class _Counting:
    """A file being uploaded, which reports how much was read."""

    def __init__(self, f, total, progress):
        self.f = f
        self.sent = 0
        self.total = total
        self.progress = progress

    def read(self, n=-1):
        data = self.f.read(CHUNK if n is None or n < 0 else min(n, CHUNK))
        self.sent += len(data)
        if self.progress is not None:
            self.progress(self.sent, self.total)
        return data


class Client:
    """Talks to one farm with one API key. Safe to use from one thread at a
    time; make one per thread otherwise."""

    def __init__(self, server, api_key, timeout=60.0, poll_interval=1.0):
        if not server:
            raise ValueError("no server: give the farm's URL (RENDERFARM_SERVER), such as http://farm:8080")
        if not api_key:
            raise ValueError("no API key: give the key of your workspace (RENDERFARM_API_KEY); the farm's operator makes one with `renderfarm keys create`")
        parsed = urllib.parse.urlparse(server)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("the server %r is not an http:// or https:// URL" % server)
        self.server = server.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.poll_interval = poll_interval

    # -- requests ---------------------------------------------------------

    def request(self, method, path, body=None):
        """Sends one API request and answers its decoded JSON."""
        url = self.server + BASE_PATH + path
        data = None
        headers = {"Authorization": "Bearer " + self.api_key, "Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as err:
                raw = err.read()
                if err.code == 429 and attempt < RATE_LIMIT_RETRIES:
                    time.sleep(float(err.headers.get("Retry-After") or 1))
                    continue
                raise self._error(err.code, raw) from None
            except urllib.error.URLError as err:
                raise APIError(0, "UNREACHABLE", "cannot reach the farm at %s: %s" % (self.server, err.reason)) from None

    @staticmethod
    def _error(status, raw):
        try:
            problem = json.loads(raw)["error"]
            return APIError(status, problem.get("code", ""), problem.get("message", ""))
        except (ValueError, KeyError, TypeError):
            return APIError(status, "HTTP_%d" % status, raw[:200].decode("utf-8", "replace") or "no message")

    def openapi(self):
        """The farm's OpenAPI document, which says which fields it takes."""
        req = urllib.request.Request(self.server + BASE_PATH + "/openapi.json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise self._error(err.code, err.read()) from None
        except urllib.error.URLError as err:
            raise APIError(0, "UNREACHABLE", "cannot reach the farm at %s: %s" % (self.server, err.reason)) from None

    def render_fields(self):
        """The fields of requestedRenderConfig this farm takes."""
        schemas = self.openapi().get("components", {}).get("schemas", {})
        return set(schemas.get("RenderConfig", {}).get("properties", {}))

    # -- the API ----------------------------------------------------------

    def upload(self, path, progress=None):
        """Uploads a .blend or .zip and answers its slug. progress(sent,
        total) is called as bytes go out."""
        ticket = self.request("POST", "/uploads", {"fileName": os.path.basename(path), "fileType": file_type(path)})
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            # A presigned URL carries its own authority: no API key, and
            # no header a plain `curl -T` would not send.
            req = urllib.request.Request(_check_url(ticket["uploadUrl"]), data=_Counting(f, size, progress), method="PUT",
                                         headers={"Content-Length": str(size)})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
            except urllib.error.HTTPError as err:
                raise self._error(err.code, err.read()) from None
            except urllib.error.URLError as err:
                raise APIError(0, "UNREACHABLE", "uploading %s: %s" % (os.path.basename(path), err.reason)) from None
        return ticket["slug"]

    def create_job(self, slug):
        return self.request("POST", "/jobs", {"slug": slug})

    def validate(self, job_id):
        return self.request("POST", "/jobs/%s/validate" % _id(job_id))

    def render(self, job_id, config):
        """Starts the render; config is requestedRenderConfig, and
        colorManagementPreset defaults to "default" (the file's)."""
        config = dict(config or {})
        config.setdefault("colorManagementPreset", "default")
        return self.request("POST", "/jobs/%s/render" % _id(job_id), {"requestedRenderConfig": config})

    def job(self, job_id):
        return self.request("GET", "/jobs/%s" % _id(job_id))["data"]

    def jobs(self, page=1, page_size=20, status=None):
        query = {"page": page, "pageSize": page_size}
        if status:
            query["status"] = status
        return self.request("GET", "/jobs?" + urllib.parse.urlencode(query))

    def cancel(self, job_id):
        return self.request("POST", "/jobs/%s/cancel" % _id(job_id))

    # A job of more frames than this is followed by its counters alone
    # (wait): its frames are about 77 bytes each in every poll, megabytes
    # for the largest jobs, and a line of them is more than a panel shows.
    MANY_FRAMES = 2000

    def progress(self, job_id, frames=True):
        """The job's progress; frames=False asks for the counters alone,
        without each frame's state (a job of 100,000 frames is megabytes
        with them)."""
        return self.request("GET", "/jobs/%s/progress%s" % (_id(job_id), "" if frames else "?frames=none"))

    def downloads(self, job_id):
        return self.request("GET", "/jobs/%s/downloads" % _id(job_id))

    # -- flows ------------------------------------------------------------

    def wait(self, job_id, statuses=FINAL, on_progress=None, should_stop=None, timeout=None, frames=True):
        """Polls until the job reaches one of statuses and answers it.
        A job that ends elsewhere raises JobEnded. on_progress(job,
        progress) sees each poll: with each frame's state when frames is
        True and the job has at most MANY_FRAMES frames, else its counters
        alone; should_stop() ends the wait early (answering None); timeout
        is in seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                listed = frames and ((job.get("finalConfig") or {}).get("frameCount") or 0) <= self.MANY_FRAMES
                on_progress(job, self.progress(job_id, frames=listed))
            if job["status"] in statuses:
                return job
            if job["status"] in FINAL:
                raise JobEnded(job)
            if should_stop is not None and should_stop():
                return None
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("job %s is still %s after %g s" % (job_id, job["status"], timeout))
            time.sleep(self.poll_interval)

    def submit(self, path, config=None, on_event=None, progress=None):
        """Uploads path, validates it and starts the render. on_event(stage,
        job) is told of each step: "uploaded", "validated" (with the
        analysis), "rendering". Answers the job as the render started."""
        def tell(stage, job):
            if on_event is not None:
                on_event(stage, job)
        slug = self.upload(path, progress)
        job = self.create_job(slug)
        tell("uploaded", job)
        self.validate(job["id"])
        job = self.wait(job["id"], ("validated",))
        tell("validated", job)
        job = self.render(job["id"], config)
        tell("rendering", job)
        return job

    def download_file(self, url, dest, progress=None):
        """Fetches a presigned URL into dest, through a temporary file in its
        folder, so a cut download never leaves half a frame under its name."""
        folder = os.path.dirname(os.path.abspath(dest))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".renderfarm-")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with urllib.request.urlopen(_check_url(url), timeout=self.timeout) as resp:
                        total = int(resp.headers.get("Content-Length") or 0)
                        got = 0
                        while True:
                            chunk = resp.read(CHUNK)
                            if not chunk:
                                break
                            out.write(chunk)
                            got += len(chunk)
                            if progress is not None:
                                progress(got, total)
                except urllib.error.HTTPError as err:
                    raise self._error(err.code, err.read()) from None
                except urllib.error.URLError as err:
                    raise APIError(0, "UNREACHABLE", "downloading %s: %s" % (os.path.basename(dest), err.reason)) from None
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return dest

    def download_frames(self, job_id, dest_of, progress=None):
        """Downloads every frame of a job; dest_of(output) names the file
        for an entry of frameOutputs ({"frame", "fileName", "url", …}).
        Answers the paths written, in frame order."""
        outputs = self.downloads(job_id).get("frameOutputs") or []
        written = []
        for i, output in enumerate(outputs):
            dest = dest_of(output)
            self.download_file(output["url"], dest)
            written.append(dest)
            if progress is not None:
                progress(i + 1, len(outputs))
        return written


def _check_url(url):
    """Presigned URLs are http or https: never a local file or anything
    else urllib would open."""
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise APIError(0, "BAD_URL", "the farm handed out a URL that is not http or https: %.100r" % url)
    return url


def _id(job_id):
    """A job id as it may go into a URL path."""
    return urllib.parse.quote(str(job_id), safe="")


def frame_ranges(start, end, step=1):
    """The frame range string the farm reads: "1-250", "7", "1-250x5"."""
    text = str(start) if start == end else "%d-%d" % (start, end)
    if step > 1 and start != end:
        text += "x%d" % step
    return text


def progress_line(job, progress):
    """One line about a job's progress, for a terminal or Blender's UI."""
    if not progress or not progress.get("framesTotal"):
        return job["status"]
    line = "%s: %d/%d frames" % (job["status"], progress["framesCompleted"], progress["framesTotal"])
    if progress.get("framesFailed"):
        line += ", %d failed" % progress["framesFailed"]
    eta = progress.get("etaSeconds")
    if eta and job["status"] not in FINAL:
        line += ", about %s left" % duration(eta)
    return line


def frames_by_status(progress):
    """The frames of a progress answer grouped by status, as compact ranges:
    "completed 1-3, rendering 4, queued 5-24"."""
    groups = {}
    for frame in (progress or {}).get("frames") or []:
        groups.setdefault(frame["status"], []).append(frame["frame"])
    parts = []
    for status in ("completed", "rendering", "queued", "failed", "canceled"):
        frames = sorted(groups.get(status, []))
        if not frames:
            continue
        ranges, start, prev = [], frames[0], frames[0]
        for f in frames[1:] + [None]:
            if f is not None and f == prev + 1:
                prev = f
                continue
            ranges.append(str(start) if start == prev else "%d-%d" % (start, prev))
            if f is not None:
                start = prev = f
        parts.append("%s %s" % (status, ",".join(ranges)))
    return ", ".join(parts)


def duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % (seconds // 60, seconds % 60)
    return "%d h %02d min" % (seconds // 3600, (seconds % 3600) // 60)


# -- the command line ----------------------------------------------------------


def _client(args):
    return Client(args.server or os.environ.get("RENDERFARM_SERVER", ""),
                  args.api_key or os.environ.get("RENDERFARM_API_KEY", ""))


# What the command line prints of a job is the farm's text, and is
# printed escaped (printable); its JSON is escaped by json.dumps.


def _print_progress(job, progress):
    print(printable(progress_line(job, progress)), file=sys.stderr, flush=True)


def _print_event(stage, job):
    print("job %s: %s" % (printable(job["id"]), stage), file=sys.stderr, flush=True)
    if stage == "validated":
        for w in (job.get("analysis") or {}).get("warnings") or []:
            print("warning %s: %s" % (printable(w["code"]), printable(w["message"])), file=sys.stderr, flush=True)


def _download(client, job_id, folder):
    def dest_of(output):
        return os.path.join(folder, safe_name(output["fileName"]))
    paths = client.download_frames(job_id, dest_of)
    for p in paths:
        print(printable(p))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m renderfarm_client", description="Submit to a renderfarm and follow the jobs.")
    parser.add_argument("--server", help="the farm's URL (default: $RENDERFARM_SERVER)")
    parser.add_argument("--api-key", help="the workspace's API key (default: $RENDERFARM_API_KEY)")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("submit", help="upload a .blend or project .zip, validate it and render")
    p.add_argument("file")
    p.add_argument("--frames", help="frame ranges such as 1-24 or 1-10,20 (default: the scene's)")
    p.add_argument("--samples", type=int)
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--download", metavar="DIR", help="download the frames into DIR when it completes (implies --wait)")
    p = commands.add_parser("status", help="show a job")
    p.add_argument("job")
    p.add_argument("--wait", action="store_true")
    commands.add_parser("jobs", help="list the workspace's jobs")
    p = commands.add_parser("cancel", help="stop a job")
    p.add_argument("job")
    p = commands.add_parser("download", help="download a job's frames")
    p.add_argument("job")
    p.add_argument("dir")
    args = parser.parse_args(argv)

    try:
        client = _client(args)
        if args.command == "submit":
            config = {}
            if args.frames:
                config["frameRanges"] = [r.strip() for r in args.frames.split(",") if r.strip()]
            if args.samples:
                config["sampleCount"] = args.samples
            if args.chunk_size:
                config["chunkSize"] = args.chunk_size
            job = client.submit(args.file, config, _print_event)
            if args.wait or args.download:
                job = client.wait(job["id"], on_progress=_print_progress, frames=False)
                if job["status"] == "completed" and args.download:
                    _download(client, job["id"], args.download)
            print(json.dumps(job))
            return 0 if job["status"] not in ("failed", "canceled") else 1
        if args.command == "status":
            job = client.wait(args.job, on_progress=_print_progress, frames=False) if args.wait else client.job(args.job)
            print(json.dumps(job))
            return 0 if job["status"] not in ("failed", "canceled") else 1
        if args.command == "jobs":
            for job in client.jobs()["jobs"]:
                print(printable("%s  %-11s  %s" % (job["id"], job["status"], job["createdAt"])))
            return 0
        if args.command == "cancel":
            print(json.dumps(client.cancel(args.job)))
            return 0
        if args.command == "download":
            _download(client, args.job, args.dir)
            return 0
    except (APIError, JobEnded, ValueError, OSError) as err:
        print("renderfarm_client: %s" % printable(err), file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
