"""The API's tests drive the same control-panel and registrar stand-ins as the hosting and
domains tests (and the same test encryption keys for the stored passwords)."""

from clientarea.domains.tests.conftest import registrar  # noqa: F401 (a fixture)
from clientarea.hosting.tests.conftest import encryption_keys, panel  # noqa: F401 (fixtures)
