"""The simulated customers of the load benchmark (bench/bench_load.py starts Locust with
this file; it makes the logins in BENCH_LOAD_CUSTOMERS).

Each simulated customer logs in with a login of its own (with the login form's CSRF
token, as a browser does), then browses, pays its own unpaid invoices (by credit or by
its account's stored card, whichever its account has) and opens tickets, with a pause
between pages. Every answer is checked: a status other than the one expected (a 200 for
a page, a redirect to the right place after a form), or a page without what it must show
(its heading and the customer's own data), is an error. Redirects are not followed, so
each page is timed alone.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import secrets
from typing import Any

from locust import HttpUser, between, task
from urllib3.util.retry import Retry

_DATA = json.loads(open(os.environ["BENCH_LOAD_CUSTOMERS"]).read())  # noqa: SIM115
PASSWORD: str = _DATA["password"]
CUSTOMERS: list[dict[str, Any]] = _DATA["customers"]
_next_login = itertools.count()

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
IDEMPOTENCY = re.compile(r'name="idempotency_key" value="([^"]+)"')
METHODS = re.compile(r'name="method" value="([^"]+)"')
DEPARTMENTS = re.compile(r'<option value="(\d+)"')
# The hidden field every client-area form carries: the account it was shown for.
ACCOUNT_PIN = re.compile(r'name="_account" value="(\d+)"')


class CheckFailed(Exception):
    pass


class Customer(HttpUser):
    wait_time = between(
        float(os.environ.get("BENCH_WAIT_MIN", "0.5")),
        float(os.environ.get("BENCH_WAIT_MAX", "2")),
    )

    def on_start(self) -> None:
        number = next(_next_login)
        if number >= len(CUSTOMERS):
            raise RuntimeError("More simulated customers than logins: raise BENCH_USERS.")
        self.me = CUSTOMERS[number]
        # The benchmark's throwaway certificate (its server speaks HTTPS, as production).
        if os.environ.get("REQUESTS_CA_BUNDLE"):
            self.client.verify = os.environ["REQUESTS_CA_BUNDLE"]
        # As browsers do: a GET sent on a kept-alive connection that the server closed as
        # idle at that same instant (gunicorn's keepalive) is sent again, once, on a new
        # connection. Nothing else is retried: not a POST, not an answer, not a timeout.
        # urllib3 logs each retry ("Retrying ..."), and bench_load.py counts them.
        self.client.adapters["https://"].max_retries = Retry(
            total=1, connect=1, read=1, redirect=0, status=0, other=0,
            allowed_methods=frozenset({"GET"}), raise_on_status=False,
        )  # fmt: skip
        self.unpaid = [dict(i) for i in self.me["invoices"]]
        self.log_in()

    # The pages. Weights: what a customer does most (the dashboard, the lists) is most
    # frequent; paying and opening tickets are rarer, logging in again rarer still.

    @task(6)
    def dashboard(self) -> None:
        self.page("dashboard", "/", self.me["company"])

    @task(4)
    def invoice_list(self) -> None:
        self.page("invoice list", "/billing/", "<h1>Invoices</h1>")

    @task(4)
    def invoice(self) -> None:
        invoice = random.choice(self.me["invoices"])
        self.page("an invoice", f"/billing/invoices/{invoice['id']}/", f"#{invoice['number']}")

    @task(2)
    def pay(self) -> None:
        if not self.unpaid:
            return
        invoice = self.unpaid.pop(0)
        url = f"/billing/invoices/{invoice['id']}/pay/"
        form = self.page("pay: the form", url, f"Pay invoice #{invoice['number']}")
        if form is None:
            return
        offered = METHODS.findall(form)
        if self.me["pays_by"] == "credit":
            method, name = "credit", "pay: by credit (POST)"
        else:
            cards = [m for m in offered if m.startswith("card-")]
            method, name = (cards[0] if cards else "no stored card"), "pay: by card (POST)"
        key = IDEMPOTENCY.search(form)
        self.post(
            name,
            url,
            {"method": method, "idempotency_key": key.group(1) if key else ""},
            form,
            redirect_to=f"/billing/invoices/{invoice['id']}/",
        )
        self.page(
            "an invoice (after paying)",
            f"/billing/invoices/{invoice['id']}/",
            f'Invoice #{invoice["number"]} <span class="badge badge-ok">Paid</span>',
        )

    @task(3)
    def services(self) -> None:
        self.page("services", "/services/", self.me["service"])

    @task(3)
    def domains(self) -> None:
        self.page("domains", "/domains/", self.me["domain"])

    @task(3)
    def tickets(self) -> None:
        self.page("tickets", "/support/", self.me["ticket"])

    @task(1)
    def open_ticket(self) -> None:
        form = self.page("open a ticket: the form", "/support/new/", "<h1>Open Ticket</h1>")
        if form is None:
            return
        subject = f"Load test question {secrets.token_hex(4)}"
        departments = DEPARTMENTS.findall(form)
        location = self.post(
            "open a ticket (POST)",
            "/support/new/",
            {
                "department": departments[0] if departments else "",
                "subject": subject,
                "priority": "medium",
                "message": "How do I point my domain at the new server?",
                "about": "",
            },
            form,
            redirect_to="/support/",
        )
        if location:
            self.page("a ticket (after opening)", location, subject)

    @task(3)
    def email_history(self) -> None:
        self.page("Email History", "/emails/", "<h1>Email History</h1>")

    @task(1)
    def log_out_and_in(self) -> None:
        # The browser keeps its cookies (logging out clears only its cache), among them
        # the device cookie that marks it as one its person has logged in from.
        self.post("log out (POST)", "/logout/", {}, self._last_page, redirect_to="/login/")
        self.log_in()

    # Helpers

    def log_in(self) -> None:
        form = self.page("log in: the form", "/login/", "csrfmiddlewaretoken")
        if form is None:
            return
        if self.post(
            "log in (POST)",
            "/login/",
            {"username": self.me["email"], "password": PASSWORD, "next": ""},
            form,
            redirect_to="/",
        ):
            # Where the login leads, as a browser follows it (and the page whose forms,
            # log out's among them, carry the CSRF token the login rotated).
            self.dashboard()

    _last_page = ""

    def page(self, name: str, path: str, expect: str) -> str | None:
        """GET a page: a 200 that shows `expect`, or an error."""
        with self.client.get(
            path, name=name, allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code != 200:
                where = response.headers.get("Location", "") or response.error or ""
                response.failure(f"HTTP {response.status_code} {where}".strip())
                return None
            if expect not in response.text:
                response.failure(f"the page does not show {expect!r}")
                return None
            response.success()
            self._last_page = response.text
            return response.text

    def post(
        self, name: str, path: str, data: dict[str, str], form: str, *, redirect_to: str
    ) -> str | None:
        """POST a form as a browser does (its CSRF token, Origin and Referer): a redirect
        to `redirect_to` (a prefix), or an error. Returns where it redirects."""
        token, pin = CSRF.search(form), ACCOUNT_PIN.search(form)
        if pin:
            data = {**data, "_account": pin.group(1)}
        base = self.host.rstrip("/")
        with self.client.post(
            path,
            data={**data, "csrfmiddlewaretoken": token.group(1) if token else ""},
            headers={"Origin": base, "Referer": base + path},
            name=name,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            location = response.headers.get("Location", "")
            if response.status_code not in (301, 302, 303) or not location.startswith(redirect_to):
                detail = re.findall(r'class="[^"]*(?:error|alert)[^"]*"[^>]*>([^<]{0,200})',
                                    response.text)  # fmt: skip
                response.failure(
                    f"HTTP {response.status_code} to {location or response.error or '-'} "
                    f"(expected a redirect to {redirect_to}) {detail[:2]}"
                )
                return None
            response.success()
            return location
