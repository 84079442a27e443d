/* Reads: studies assigned to the caller from /api/reads; open in the viewer, sign the read. */
(function () {
  'use strict';
  var table = document.querySelector('#reads tbody');
  var message = document.getElementById('reads-message');
  var template = document.getElementById('read-sign');
  if (!table) return;

  var cell = window.trialpacsPortal.cell;

  function say(text) {
    window.trialpacsPortal.say(message, text);
  }

  function link(td, href, text, cls) {
    var a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    if (cls) a.className = cls;
    td.appendChild(a);
  }

  function signForm(item, meanings) {
    var form = template.content.firstElementChild.cloneNode(true);
    meanings.forEach(function (m) {
      var o = document.createElement('option');
      o.value = m;
      o.textContent = m;
      form.elements.meaning.appendChild(o);
    });
    form.elements.findings.value = item.findings || '';
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var body = {
        password: form.elements.password.value,
        meaning: form.elements.meaning.value,
        findings: form.elements.findings.value
      };
      if (form.elements.otp.value) body.otp = form.elements.otp.value;
      form.querySelector('button').disabled = true;
      fetch('/api/reads/' + encodeURIComponent(item.id) + '/sign', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body)
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (b) { return { ok: r.ok, body: b }; });
      }).then(function (res) {
        form.querySelector('button').disabled = false;
        form.elements.password.value = '';
        say(res.ok ? 'Read signed.' : 'Not signed: ' + (res.body.detail || 'refused'));
        if (res.ok) load();
      });
    });
    return form;
  }

  function render(items, meanings) {
    table.textContent = '';
    if (!items.length) {
      var tr = document.createElement('tr');
      var td = cell(tr, 'No reads assigned to you.');
      td.colSpan = 6;
      td.className = 'empty';
      table.appendChild(tr);
      return;
    }
    items.forEach(function (item) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-read', item.id);
      cell(tr, item.trial);
      link(cell(tr, ''), '/studies/' + encodeURIComponent(item.study), item.study);
      cell(tr, item.assigned_at);
      cell(tr, item.status);
      link(cell(tr, ''), '/viewer/viewer?StudyInstanceUIDs=' + encodeURIComponent(item.study), 'Open', 'button open-viewer');
      var sign = cell(tr, '');
      if (item.status === 'signed' && item.signature) {
        sign.textContent = item.signature.manifestation || item.signature.meaning || 'signed';
      } else {
        sign.appendChild(signForm(item, meanings));
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
      .then(function (body) {
        var items = Array.isArray(body) ? body : body.reads || [];
        render(items, body.meanings || ['Reviewed']);
      })
      .catch(function (e) { table.textContent = ''; say('Cannot load reads: ' + e.message); });
  }
  load();
})();
