"""A local Google Cloud Storage for the tests: gcp-storage-emulator in a child process on 127.0.0.1, with the
parts of GCS the project's clients rely on that the emulator lacks, added here.

  with gcs_emulator.running(bucket="bucket") as url:   # sets the clients' endpoint variables
      ... gs://bucket/... through gcsfs / etils.epath, orbax and tensorstore ...

Added to the emulator: generation preconditions (ifGenerationMatch / ifGenerationNotMatch, answered 412 / 304:
an exclusive create is what the run lock relies on), the `x-goog-generation` header on media downloads
(tensorstore reads an object's generation from it), and an answer to `Expect: 100-continue` (libcurl sends it
on uploads over 1 MiB and would otherwise wait a second for each).
"""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import parse_qs, unquote, urlparse


# How each client finds the endpoint (gcsfs and google-cloud-storage; tensorstore, under orbax), and what the
# tests need besides: gcsfs's plain filesystem class (its bucket-type probe speaks gRPC over TLS) and
# anonymous credentials (a developer's own must never reach the emulator, nor the emulator's writes GCS).
def client_environment(url: str) -> dict:
    return {
        "STORAGE_EMULATOR_HOST": url,
        "TENSORSTORE_GCS_HTTP_URL": url,
        "FSSPEC_GCS_TOKEN": "anon",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(bucket: str = "bucket"):
    """Start the emulator with one bucket; set the client variables in this process; yield its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # Its output goes to a file: the emulator prints a traceback whenever a client hangs up early, and a pipe
    # nobody reads would block its single server thread.
    log = tempfile.NamedTemporaryFile("w", prefix="gcs-emulator-", suffix=".log", delete=False)  # noqa: SIM115
    child = subprocess.Popen(
        [sys.executable, __file__, str(port), bucket], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            break
        except OSError:
            if child.poll() is not None or time.time() > deadline:
                child.kill()
                raise RuntimeError(f"the GCS emulator did not start; see {log.name}") from None
            time.sleep(0.05)
    saved = {k: os.environ.get(k) for k in client_environment(url)}
    os.environ.update(client_environment(url))
    try:
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        child.terminate()
        child.wait(10)
        log.close()
        os.remove(log.name)


# ---------------------------------------------------------------------------- the child process
def _object_of(path: str):
    """(bucket, object name) of a JSON API object path (upload, download or metadata), else None."""
    parts = urlparse(path).path.split("/")
    if "b" not in parts:
        return None
    i = parts.index("b")
    if len(parts) > i + 3 and parts[i + 2] == "o":
        return parts[i + 1], unquote("/".join(parts[i + 3 :]))
    name = parse_qs(urlparse(path).query).get("name")
    if name and len(parts) > i + 1:
        return parts[i + 1], name[0]
    return None


def _generation(storage, bucket: str, name: str) -> int:
    from gcp_storage_emulator.exceptions import NotFound

    try:
        return int(storage.get_file_obj(bucket, name)["generation"])
    except NotFound:
        return 0


def _serve(port: int, bucket: str) -> None:
    from http import HTTPStatus

    from gcp_storage_emulator import server

    original_handle, original_close = server.Router.handle, server.Response.close

    def handle(router, method):
        request = router._request_handler
        query = parse_qs(urlparse(request.path).query)
        target = _object_of(request.path)
        conditional = (
            "ifGenerationMatch" in query or "ifGenerationNotMatch" in query
        ) and "upload_id" not in query
        if target and conditional and method in ("GET", "POST", "PUT"):
            generation = _generation(request.storage, *target)
            status = None
            if "ifGenerationMatch" in query and int(query["ifGenerationMatch"][0]) != generation:
                status = HTTPStatus.PRECONDITION_FAILED
            elif "ifGenerationNotMatch" in query and int(query["ifGenerationNotMatch"][0]) == generation:
                status = HTTPStatus.NOT_MODIFIED
            if status is not None:
                if request.headers.get("Expect", "").lower() != "100-continue":
                    request.rfile.read(int(request.headers.get("Content-Length") or 0))
                response = server.Response(request)
                response.status = status
                if status == HTTPStatus.PRECONDITION_FAILED:
                    response.json({"error": {"code": 412, "message": "precondition failed"}})
                response.close()
                return
        if request.headers.get("Expect", "").lower() == "100-continue":
            request.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.wfile.flush()
        original_handle(router, method)

    def close(response):
        request = response._handler
        media = "alt=media" in request.path or urlparse(request.path).path.startswith("/download/")
        target = _object_of(request.path)
        if request.command == "GET" and media and target and response.status.value in (200, 206):
            response["x-goog-generation"] = str(_generation(request.storage, *target))
            response["x-goog-metageneration"] = "1"
        original_close(response)

    server.Router.handle = handle
    server.Response.close = close
    server.create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket).start()
    parent = os.getppid()
    while os.getppid() == parent:  # gone with the test process, however it ends
        time.sleep(0.5)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    _serve(int(sys.argv[1]), sys.argv[2])
