// The header's menus: the Hello menu (a <details>) and, on small screens, the main
// navigation behind its Menu button. Both work without this script: the Hello menu opens
// and closes with its summary, and the navigation stays on show. With it, either menu
// closes on Escape (focus goes back to what opened it) and on a click or focus outside.
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");

  var userMenu = document.querySelector("details.usermenu");
  var toggle = document.querySelector(".nav-toggle");
  var nav = toggle ? document.getElementById(toggle.getAttribute("aria-controls")) : null;

  function closeUserMenu(focusSummary) {
    if (!userMenu || !userMenu.open) {
      return false;
    }
    userMenu.open = false;
    if (focusSummary) {
      userMenu.querySelector("summary").focus();
    }
    return true;
  }

  function setNavOpen(open, focusToggle) {
    if (!toggle || !nav) {
      return false;
    }
    var wasOpen = toggle.getAttribute("aria-expanded") === "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    nav.classList.toggle("is-open", open);
    if (!open && wasOpen && focusToggle) {
      toggle.focus();
    }
    return wasOpen !== open;
  }

  if (toggle && nav) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      setNavOpen(toggle.getAttribute("aria-expanded") !== "true", false);
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" && event.key !== "Esc") {
      return;
    }
    var inUserMenu = userMenu && userMenu.contains(document.activeElement);
    var inNav = nav && (nav.contains(document.activeElement) || document.activeElement === toggle);
    if (closeUserMenu(inUserMenu || !inNav)) {
      event.preventDefault();
    } else if (setNavOpen(false, true)) {
      event.preventDefault();
    }
  });

  function outside(target) {
    if (userMenu && userMenu.open && !userMenu.contains(target)) {
      closeUserMenu(false);
    }
    if (nav && toggle && !nav.contains(target) && !toggle.contains(target)) {
      setNavOpen(false, false);
    }
  }

  document.addEventListener("click", function (event) {
    outside(event.target);
  });
  document.addEventListener("focusin", function (event) {
    outside(event.target);
  });
})();
