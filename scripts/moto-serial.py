#!/usr/bin/env python3
"""moto_server answering one request at a time, for SpawnIt's tests.

`moto_server` always serves on threads, and its S3 checks a conditional write (`If-None-Match: *`,
`If-Match`) and then stores the object without a lock, so two racing creates can both win there,
which real S3 never allows. The lock and compare-and-swap tests race on exactly that, so they use
this: the same moto application, served without threads (each request runs whole before the
next, as atomically as S3 answers it).

Usage: moto-serial.py HOST PORT
"""
import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False)
