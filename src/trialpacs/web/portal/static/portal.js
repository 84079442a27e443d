/* trialpacs portal: small behaviours shared by every page (no inline scripts: strict CSP). */
(function () {
  'use strict';

  // Table and message helpers for the pages' own scripts (qc.js, reads.js), which load after this one.
  window.trialpacsPortal = {
    cell: function (tr, text) {
      var td = document.createElement('td');
      td.textContent = text == null ? '' : String(text);
      tr.appendChild(td);
      return td;
    },
    say: function (element, text) {
      element.hidden = !text;
      element.textContent = text || '';
    }
  };

  // "Open in viewer": fetch a short-lived bearer token for this browser session and hand
  // it to OHIF in the URL fragment, which never reaches a server or its logs.
  document.addEventListener('click', function (event) {
    var link = event.target.closest && event.target.closest('a.open-viewer');
    if (!link) return;
    event.preventDefault();
    fetch('/auth/session/token', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) throw new Error('session ended');
        return r.json();
      })
      .then(function (body) {
        window.location.assign(link.getAttribute('href') + '#token=' + encodeURIComponent(body.access_token));
      })
      .catch(function () {
        window.location.assign('/login');
      });
  });
})();
