"""A small HTTP client for the web pages: keeps cookies, never follows redirects, reads forms."""
import html.parser
import http.client
import urllib.parse


class FormReader(html.parser.HTMLParser):
    """Collects every form: its action and its fields' values (hidden inputs included)."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": {}})
        elif tag in ("input", "button") and self.forms and attrs.get("name"):
            self.forms[-1]["fields"].setdefault(attrs["name"], attrs.get("value", ""))


class Browser:
    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, form=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie = value.split(";", 1)[0]
                key, _, val = cookie.partition("=")
                if "Max-Age=0" in value:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, form, **kw):
        return self.request("POST", path, form=form, **kw)

    def forms(self, path):
        status, headers, text = self.get(path)
        reader = FormReader()
        reader.feed(text)
        return status, reader.forms, text

    def csrf(self, path="/account"):
        """The CSRF token of the forms of a page."""
        _, forms, _ = self.forms(path)
        return next(f["fields"]["csrf"] for f in forms if "csrf" in f["fields"])

    def sign_in(self, assertion, next_path="/account"):
        status, forms, _ = self.forms(f"/login?next={urllib.parse.quote(next_path)}")
        assert status == 200
        fields = next(f["fields"] for f in forms if f["action"] == "/login")
        fields["assertion"] = assertion
        return self.post("/login", fields)
