// The portal's only script, loaded from this origin (the CSP allows no inline script). Every page works
// without it; with it, htmx boosts the same forms and links, and this adds the CSRF double-submit header.
"use strict";
document.addEventListener("htmx:configRequest", function (event) {
  var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) {
    event.detail.headers["X-CSRF-Token"] = decodeURIComponent(match[1]);
  }
});
