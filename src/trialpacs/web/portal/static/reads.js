/* Reads: studies assigned to the caller from /api/reads; open in the viewer, sign the read. */
(function () {
  'use strict';
  var table = document.querySelector('#reads tbody');
  var message = document.getElementById('reads-message');
  var template = document.getElementById('read-sign');
  if (!table) return;

  function cell(tr, text) {
    var td = document.createElement('td');
    td.textContent = text == null ? '' : String(text);
    tr.appendChild(td);
    return td;
  }

  function say(text) {
    message.hidden = !text;
    message.textContent = text || '';
  }

  function render(items) {
    table.textContent = '';
    if (!items.length) {
      var tr = document.createElement('tr');
      var td = cell(tr, 'No reads assigned to you.');
      td.colSpan = 7;
      td.className = 'empty';
      table.appendChild(tr);
      return;
    }
    items.forEach(function (item) {
      var tr = document.createElement('tr');
      cell(tr, item.trial);
      cell(tr, item.subject);
      cell(tr, item.timepoint);
      cell(tr, item.assigned || item.assigned_at);
      cell(tr, item.state);
      var open = cell(tr, '');
      if (item.study_uid) {
        var a = document.createElement('a');
        a.className = 'button open-viewer';
        a.href = '/viewer/viewer?StudyInstanceUIDs=' + encodeURIComponent(item.study_uid);
        a.textContent = 'Open';
        open.appendChild(a);
      }
      var sign = cell(tr, '');
      if (item.state !== 'signed') {
        var form = template.content.firstElementChild.cloneNode(true);
        form.addEventListener('submit', function (e) {
          e.preventDefault();
          fetch('/api/reads/' + encodeURIComponent(item.id) + '/sign', {
            method: 'POST',
            credentials: 'same-origin',
            headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
            body: JSON.stringify({ password: form.elements.password.value, meaning: 'Reviewed' })
          }).then(function (r) {
            return r.json().catch(function () { return {}; }).then(function (b) { return { ok: r.ok, body: b }; });
          }).then(function (res) {
            form.elements.password.value = '';
            say(res.ok ? 'Read signed.' : 'Not signed: ' + (res.body.detail || 'refused'));
            if (res.ok) load();
          });
        });
        sign.appendChild(form);
      }
      table.appendChild(tr);
    });
  }

  function load() {
    fetch('/api/reads', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status === 404 ? 'reads are not available' : 'HTTP ' + r.status);
        return r.json();
      })
      .then(function (items) { render(Array.isArray(items) ? items : items.items || []); })
      .catch(function (e) { table.textContent = ''; say('Cannot load reads: ' + e.message); });
  }
  load();
})();
