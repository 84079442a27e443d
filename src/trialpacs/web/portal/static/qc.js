/* QC queue: flagged series from /api/qc/queue, approve or reject with an e-signature. */
(function () {
  'use strict';
  var table = document.querySelector('#qc-queue tbody');
  var select = document.getElementById('qc-trial');
  var message = document.getElementById('qc-message');
  var template = document.getElementById('qc-sign');
  if (!table) return;

  var cell = window.trialpacsPortal.cell;

  function say(text) {
    window.trialpacsPortal.say(message, text);
  }

  function thumbs(td, item) {
    var urls = (item.thumbnails || []).slice(0, 4);
    if (item.thumbnail_url) urls.unshift(item.thumbnail_url);
    urls.forEach(function (url) {
      if (typeof url !== 'string' || url.charAt(0) !== '/') return;
      var img = document.createElement('img');
      img.src = url;
      img.width = 96;
      img.height = 96;
      img.alt = '';
      img.loading = 'lazy';
      td.appendChild(img);
    });
  }

  function render(items) {
    table.textContent = '';
    if (!items.length) {
      var tr = document.createElement('tr');
      var td = cell(tr, 'Nothing waiting for QC.');
      td.colSpan = 8;
      td.className = 'empty';
      table.appendChild(tr);
      return;
    }
    items.forEach(function (item) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-series', item.series_uid);
      thumbs(cell(tr, ''), item);
      cell(tr, item.trial + ' / ' + item.site);
      cell(tr, item.subject);
      cell(tr, item.timepoint);
      cell(tr, item.modality);
      var reasons = cell(tr, '');
      (item.reasons || []).forEach(function (r) {
        var span = document.createElement('span');
        span.className = 'reason';
        span.textContent = typeof r === 'string' ? r : (r.text || r.reason || r.code || JSON.stringify(r));
        reasons.appendChild(span);
      });
      cell(tr, item.received);
      var action = cell(tr, '');
      if (item.state && item.state !== 'pending' && item.state !== 'held_qc') {
        action.textContent = item.state;
      } else {
        var form = template.content.firstElementChild.cloneNode(true);
        form.addEventListener('submit', function (e) {
          e.preventDefault();
          decide(item, form);
        });
        action.appendChild(form);
      }
      table.appendChild(tr);
    });
  }

  function decide(item, form) {
    var decision = form.elements.decision.value;
    var body = {
      decision: decision,
      meaning: decision === 'approve' ? 'Approved' : 'Rejected',
      password: form.elements.password.value,
      reason: form.elements.reason.value
    };
    form.querySelector('button').disabled = true;
    fetch('/api/qc/series/' + encodeURIComponent(item.series_uid) + '/decision', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) { return { ok: r.ok, body: b }; });
    }).then(function (res) {
      form.querySelector('button').disabled = false;
      form.elements.password.value = '';
      if (!res.ok) {
        say('Not signed: ' + (res.body.detail || 'the decision was refused'));
        return;
      }
      say('Signed: ' + item.series_uid + ' ' + (decision === 'approve' ? 'approved' : 'rejected') + '.');
      load();
    });
  }

  function load() {
    var url = '/api/qc/queue' + (select && select.value ? '?trial=' + encodeURIComponent(select.value) : '');
    fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status === 404 ? 'the QC queue is not available' : 'HTTP ' + r.status);
        return r.json();
      })
      .then(function (items) { render(Array.isArray(items) ? items : items.items || []); })
      .catch(function (e) { table.textContent = ''; say('Cannot load the queue: ' + e.message); });
  }

  if (select) select.addEventListener('change', load);
  load();
})();
