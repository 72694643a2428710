"""LibreOffice headless: the one helper that turns office files into PDF (page renders)
or into their OOXML form (legacy DOC/PPT/XLS and RTF).

Each conversion runs ``soffice --headless --convert-to`` in its own temporary folder with
a private profile (``-env:UserInstallation``), so it never touches a user's LibreOffice
and never meets a running instance. One conversion runs at a time in a process (a lock):
LibreOffice cannot share a profile, and on a small machine two at once only thrash. A
conversion past ``ingest.office_timeout`` seconds is killed with its whole process group
(soffice forks soffice.bin) and the document fails with one line; the profile is then
thrown away, since a killed instance can leave it locked.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

from ...config import IngestSettings
from ...errors import IngestError

__all__ = ["convert", "render_status", "soffice", "warn_missing"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_profile: str | None = None
_warned = False


def soffice(settings: IngestSettings) -> str | None:
    """The LibreOffice binary to run, or None when it is not installed."""
    if settings.office_soffice:
        found = shutil.which(settings.office_soffice)
        return found or (settings.office_soffice if os.path.isfile(settings.office_soffice)
                         else None)
    return shutil.which("soffice") or shutil.which("libreoffice")


def render_status(settings: IngestSettings) -> str:
    """How office pages get rendered here, for ``mmrag info``."""
    if not settings.office_renders:
        return "off (ingest.office_renders)"
    exe = soffice(settings)
    return f"LibreOffice ({exe})" if exe else \
        "none: LibreOffice (soffice) not found, office documents are indexed without renders"


def warn_missing() -> None:
    """Say once per process that office pages get no renders, and how to fix it."""
    global _warned
    if not _warned:
        _warned = True
        log.warning("LibreOffice (soffice) not found: office documents are indexed from "
                    "their structure without page renders; install it (make install: "
                    "libreoffice-writer-nogui, -impress-nogui, -calc-nogui)")


def _profile_dir() -> str:
    global _profile
    if _profile is None or not os.path.isdir(_profile):
        _profile = tempfile.mkdtemp(prefix="mmrag-lo-profile-")
        atexit.register(shutil.rmtree, _profile, True)
    return _profile


def _drop_profile() -> None:
    global _profile
    if _profile is not None:
        shutil.rmtree(_profile, ignore_errors=True)
        _profile = None


def convert(data: bytes, ext: str, target: str, uri: str, settings: IngestSettings) -> bytes:
    """``data`` (a file of type ``ext``) converted by LibreOffice to ``target`` (``pdf``,
    ``docx``, ``pptx``, ``xlsx``). Raises IngestError naming the input when LibreOffice is
    missing, fails, or runs past ``ingest.office_timeout``."""
    exe = soffice(settings)
    if exe is None:
        raise IngestError(uri, f"converting .{ext} needs LibreOffice (soffice not found)")
    with _lock, tempfile.TemporaryDirectory(prefix="mmrag-lo-") as tmp:
        src = Path(tmp) / f"input.{ext}"
        src.write_bytes(data)
        out = Path(tmp) / "out"
        cmd = [exe, "--headless", "--norestore", "--nologo", "--nodefault", "--nolockcheck",
               f"-env:UserInstallation={Path(_profile_dir()).as_uri()}",
               "--convert-to", target, "--outdir", str(out), str(src)]
        _run(cmd, uri, settings.office_timeout)
        result = out / f"input.{target.split(':', 1)[0]}"
        if not result.is_file() or not result.stat().st_size:
            raise IngestError(uri, f"LibreOffice could not convert it to {target} "
                                   "(damaged or password-protected?)")
        return result.read_bytes()


def _run(cmd: list[str], uri: str, timeout: float) -> None:
    # its own session: a timeout kills soffice and the soffice.bin it forked, nothing else
    env = {**os.environ, "HOME": os.environ.get("HOME") or tempfile.gettempdir()}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        _drop_profile()
        raise IngestError(uri, f"LibreOffice conversion timed out after {timeout:g} s "
                               "(ingest.office_timeout)") from None
    if proc.returncode:
        lines = [ln for ln in err.decode("utf-8", "replace").splitlines()
                 if ln.strip() and "javaldx" not in ln]
        reason = lines[-1].strip()[:200] if lines else f"exit status {proc.returncode}"
        raise IngestError(uri, f"LibreOffice failed: {reason}")
