// Login form: send the browser's time zone, used as the person's zone at their first login.
(function () {
  "use strict";
  var field = document.getElementById("id_browser_time_zone");
  if (!field || typeof Intl === "undefined") {
    return;
  }
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) {
    field.value = "";
  }
})();
