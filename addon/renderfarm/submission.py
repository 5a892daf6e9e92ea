"""One submission from Blender: pack the saved .blend with every file it
uses, upload it, have the farm validate it, start the render, follow it and
download the frames.

Nothing here imports Blender. The add-on reads the scene in Blender's main
thread, hands the settings over, and runs a Submission in a thread of its
own, reading its state from a timer, so that no network call or packing
ever freezes Blender's interface; a script in background mode runs it in
its own thread and waits.

Packing runs Blender's own binary in the background on the saved file with
the add-on's packer (packer.py), the same script `renderfarm pack` runs:
the artist's open session is never replaced by the libraries the packer
opens, and their files are only read.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading

try:
    from . import renderfarm_client as rfc
except ImportError:  # imported as a top-level module, outside the package
    import renderfarm_client as rfc

PACKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "packer.py")

# Blender's output kept to explain a failed pack.
LOG_TAIL = 30


class PackFailed(Exception):
    """The packer could not make the zip; the message says why."""


def packer_env():
    """The environment of the packing Blender: the artist's, without the
    farm's key, which a Blender reading other people's files has no use for."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RENDERFARM_")}


def pack(blender, blend, out_zip, project_root="", on_progress=None):
    """Runs packer.py in a Blender of its own and answers its report.

    Only paths of ours are on Blender's command line: the script and its
    job file, in a folder this made; the .blend is named inside the job."""
    work = tempfile.mkdtemp(prefix="renderfarm-pack-")
    try:
        job = {"blend": os.path.abspath(blend), "projectRoot": project_root and os.path.abspath(project_root),
               "zip": os.path.abspath(out_zip), "report": os.path.join(work, "report.json")}
        job_path = os.path.join(work, "job.json")
        with open(job_path, "w", encoding="utf-8") as f:
            json.dump(job, f)
        argv = [blender, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1",
                "--disable-autoexec", "--python", PACKER, "--", job_path]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=packer_env(), cwd=work, start_new_session=True)
        tail = []
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail = (tail + [line])[-LOG_TAIL:]
            if line.startswith("renderfarm-pack: ") and on_progress is not None:
                on_progress(line[len("renderfarm-pack: "):])
        code = proc.wait()
        report = None
        if os.path.exists(job["report"]):
            with open(job["report"], encoding="utf-8") as f:
                report = json.load(f)
        if report is not None and report.get("error"):
            raise PackFailed(report["error"])
        if code != 0 or report is None:
            last = [l for l in tail if l.strip() and l.strip() != "Blender quit"]
            raise PackFailed("Blender stopped while packing (exit code %d): %s" % (code, last[-1] if last else "no output"))
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def only_the_blend(report):
    """Whether the zip would hold nothing but the .blend as saved."""
    files = report.get("files") or []
    return len(files) == 1 and not files[0].get("rewritten")


def pack_summary(report):
    """N files, size, M missing, as the add-on and the command line say it."""
    text = "%d files, %s" % (len(report.get("files") or []), size_text(report.get("totalBytes", 0)))
    missing = len(report.get("missing") or [])
    if missing:
        text += ", %d missing" % missing
    return text


def size_text(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "bytes" else ("%.1f %s" % (n, unit))
        n /= 1024.0


def frame_destination(output, frame_paths, folder):
    """Where a downloaded frame goes: the path Blender would write it to,
    with the extension of the file the farm made, which differs when the
    scene writes a movie and the farm stills.

    frame_paths has the path of each frame, by frame number, and for a
    scene that renders views, the path of each view's image, by (frame,
    view name) (ui.frame_paths). An entry of frameOutputs with a view (the
    view's name; "stereo" for both views in one image, None for one view
    or every view in one OpenEXR) goes to its view's path. An image of one
    view whose path is not known goes into folder under the farm's name,
    which has the view's suffix: on the frame's path, the views of a frame
    would overwrite each other."""
    name = rfc.safe_name(output["fileName"])
    frame, view = output.get("frame"), output.get("view")
    paths = frame_paths or {}
    if (frame, view) in paths:
        path = paths[(frame, view)]
    elif view in (None, "stereo"):
        path = paths.get(frame)
    else:
        path = None
    if not path:
        return os.path.join(folder, name)
    stem, ext = os.path.splitext(path)
    got = os.path.splitext(name)[1]
    if got and got.lower() != ext.lower():
        path = stem + got
    return path


class Submission:
    """One submission and what became of it. The worker thread writes its
    state under a lock; the interface reads a snapshot."""

    def __init__(self, client, blend, blender, config, project_root="", wait=False, download=False,
                 frame_paths=None, download_dir=""):
        self.client = client
        self.blend = blend
        self.blender = blender
        self.config = config
        self.project_root = project_root
        self.wait = wait or download
        self.download = download
        self.frame_paths = frame_paths or {}
        self.download_dir = download_dir
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = None
        self.state = {
            "stage": "starting", "message": "", "fraction": 0.0, "job": None, "progress": None,
            "pack": None, "warnings": [], "error": "", "downloaded": [],
        }

    def update(self, **changes):
        with self.lock:
            self.state.update(changes)

    def snapshot(self):
        with self.lock:
            return dict(self.state)

    @property
    def done(self):
        return self.snapshot()["stage"] in ("done", "failed", "canceled")

    def start(self):
        self.thread = threading.Thread(target=self.run, name="renderfarm-submit", daemon=True)
        self.thread.start()

    def cancel(self):
        """Stops following, and cancels the job on the farm if it has one."""
        self.stop.set()
        job = self.snapshot()["job"]
        if job is not None and job["status"] not in rfc.FINAL:
            self.update(job=self.client.cancel(job["id"]))

    def run(self):
        try:
            self._run()
        except (PackFailed, rfc.APIError, rfc.JobEnded, OSError, ValueError, TimeoutError) as err:
            self.update(stage="failed", error=str(err), message=str(err))
        except Exception as err:  # a thread's exception would go nowhere
            self.update(stage="failed", error="%s: %s" % (type(err).__name__, err), message=str(err))

    def _run(self):
        work = tempfile.mkdtemp(prefix="renderfarm-submit-")
        try:
            upload = self._pack(work)
            self.update(stage="uploading", message="uploading %s" % os.path.basename(upload))

            def sent(done, total):
                self.update(fraction=done / total if total else 1.0)

            def on_event(stage, job):
                if stage == "uploaded":
                    self.update(stage="validating", job=job, message="the farm is checking the file")
                elif stage == "validated":
                    analysis = job.get("analysis") or {}
                    warnings = ["%s: %s" % (w["code"], w["message"]) for w in analysis.get("warnings") or []]
                    self.update(job=job, warnings=warnings)
                elif stage == "rendering":
                    self.update(stage="rendering", job=job, fraction=0.0, message="rendering")
            job = self.client.submit(upload, self.config, on_event, sent)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if not self.wait:
            self.update(stage="done", message="submitted job %s" % job["id"])
            return

        def on_progress(job, progress):
            total = (progress or {}).get("framesTotal") or 0
            self.update(job=job, progress=progress, message=rfc.progress_line(job, progress),
                        fraction=(progress["framesCompleted"] / total) if total else 0.0)
        job = self.client.wait(job["id"], on_progress=on_progress, should_stop=self.stop.is_set)
        if job is None:
            self.update(stage="canceled", message="stopped following the job")
            return
        if job["status"] != "completed":
            raise rfc.JobEnded(job)
        if self.download:
            self.fetch(job["id"])
        self.update(stage="done", job=job, message="job %s completed" % job["id"])

    def _pack(self, work):
        """Packs the .blend; answers what to upload: the zip, or the .blend
        alone when it uses no other file."""
        self.update(stage="packing", message="packing %s" % os.path.basename(self.blend))
        out = os.path.join(work, os.path.splitext(os.path.basename(self.blend))[0] + ".zip")
        report = pack(self.blender, self.blend, out, self.project_root,
                      lambda line: self.update(message="packing: " + line))
        self.update(pack=report, message="packed " + pack_summary(report))
        if only_the_blend(report):
            return self.blend
        return out

    def fetch(self, job_id):
        """Downloads the job's frames where Blender would have written them."""
        self.update(stage="downloading", message="downloading frames", fraction=0.0)
        written = self.client.download_frames(
            job_id, lambda o: frame_destination(o, self.frame_paths, self.download_dir),
            lambda done, total: self.update(fraction=done / total if total else 1.0))
        self.update(downloaded=written)
        return written
