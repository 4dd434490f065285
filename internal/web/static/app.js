// goscaler web UI: confirmations for actions and live counter graphs.
// Pages are rendered by the server; htmx refreshes their live parts.
(function () {
  'use strict';

  // Every form with data-confirm asks first. {field} in the message is
  // replaced by that field's value.
  document.addEventListener('submit', function (e) {
    var form = e.target;
    var msg = form.getAttribute('data-confirm');
    if (!msg) return;
    msg = msg.replace(/\{(\w+)\}/g, function (_, name) {
      var el = form.elements[name];
      return el ? el.value : '';
    });
    if (!window.confirm(msg)) e.preventDefault();
  });

  // No polling in a hidden tab: the next poll after it shows catches up.
  document.addEventListener('htmx:beforeRequest', function (e) {
    if (document.hidden) e.preventDefault();
  });
  // A session that ended sends the page to the login form.
  document.addEventListener('htmx:responseError', function (e) {
    if (e.detail.xhr && e.detail.xhr.status === 401) {
      window.location.href = '/login?next=' + encodeURIComponent(window.location.pathname);
    }
  });

  // The scale form follows the desired size as it changes (a trigger scaled
  // the cluster), unless someone is editing it.
  document.addEventListener('input', function (e) {
    if (e.target.name === 'desired') e.target.setAttribute('data-edited', 'true');
  });
  document.addEventListener('htmx:oobAfterSwap', function () {
    var cur = document.getElementById('in-service');
    var input = document.querySelector('input[name="desired"]');
    if (!cur || !input || input.hasAttribute('data-edited') || document.activeElement === input) return;
    input.value = cur.getAttribute('data-desired');
  });

  var palette = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948',
    '#ff9da7', '#9c755f', '#bab0ac', '#e15759', '#8cd17d', '#86bcb6'];

  // compact writes an axis label: 1.5k, 2M.
  function compact(v) {
    var a = Math.abs(v);
    if (a >= 1e9) return +(v / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return +(v / 1e3).toFixed(1) + 'k';
    return +v.toFixed(2) + '';
  }

  function fmt(v) {
    if (v == null) return '–';
    return (Math.round(v * 100) / 100).toString();
  }

  // Chart draws one counter from the JSON at data-src and refreshes it every
  // counter interval (at least 2 s) while it is on the page.
  function Chart(el) {
    this.el = el;
    this.note = el.parentNode.querySelector('.chart-note');
    this.u = null;
    this.key = '';
    el._chart = this;
    this.load();
  }

  Chart.prototype.load = function () {
    var self = this;
    if (!document.body.contains(this.el)) return;
    var delay = 2000;
    if (document.hidden) {
      setTimeout(function () { self.load(); }, delay);
      return;
    }
    fetch(this.el.getAttribute('data-src'), { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (r) {
        if (r.status === 401) {
          window.location.href = '/login?next=' + encodeURIComponent(window.location.pathname);
          throw new Error('logged out');
        }
        if (!r.ok) return r.text().then(function (t) { throw new Error(t || r.statusText); });
        return r.json();
      })
      .then(function (d) {
        delay = Math.max(2000, d.interval_ms || 0);
        self.draw(d);
      })
      .catch(function (err) {
        if (self.note) self.note.textContent = 'Cannot load this graph: ' + err.message;
      })
      .finally(function () {
        setTimeout(function () { self.load(); }, delay);
      });
  };

  Chart.prototype.draw = function (d) {
    var el = this.el;
    el.setAttribute('data-points', String(d.points));
    var notes = [];
    if (d.note) notes.push(d.note);
    if (d.errors) notes.push(d.errors + ' failed reading(s) in this window' + (d.last_error ? '; last: ' + d.last_error : ''));
    if (this.note) this.note.textContent = notes.join(' · ');
    if (!d.x.length) {
      if (this.u) { this.u.destroy(); this.u = null; this.key = ''; }
      if (!el.querySelector('.empty')) {
        el.innerHTML = '';
        var p = document.createElement('p');
        p.className = 'empty';
        p.textContent = 'No readings yet in the last 15 minutes.';
        el.appendChild(p);
      }
      return;
    }
    var data = [d.x];
    var series = [{ label: 'time', value: function (u, v) { return v == null ? '–' : new Date(v * 1000).toLocaleTimeString(); } }];
    var n = 0;
    d.series.forEach(function (s) {
      data.push(s.values);
      if (s.aggregate) {
        series.push({ label: 'cluster ' + d.aggregate, stroke: '#111827', width: 2.5, points: { show: false }, value: function (u, v) { return fmt(v); } });
      } else {
        series.push({ label: s.label, stroke: palette[n++ % palette.length], width: 1.25, points: { show: false }, value: function (u, v) { return fmt(v); } });
      }
    });
    // A threshold far above the readings would flatten them: it is named
    // below the graph instead of drawn.
    var top = 0;
    d.series.forEach(function (s) {
      s.values.forEach(function (v) { if (v != null && v > top) top = v; });
    });
    var off = [];
    d.thresholds.forEach(function (t) {
      if (Math.abs(t.value) > Math.max(top, 1) * 10) {
        off.push(t.label);
        return;
      }
      data.push(d.x.map(function () { return t.value; }));
      series.push({ label: t.label, stroke: '#dc2626', dash: [6, 4], width: 1.5, points: { show: false }, value: function () { return fmt(t.value); } });
    });
    if (off.length && this.note) {
      this.note.textContent = (this.note.textContent ? this.note.textContent + ' · ' : '') + 'off the chart: ' + off.join(', ');
    }
    var key = series.map(function (s) { return s.label; }).join('|');
    if (this.u && key === this.key) {
      this.u.setData(data);
      return;
    }
    if (this.u) this.u.destroy();
    el.innerHTML = '';
    this.key = key;
    var opts = {
      width: Math.max(300, el.clientWidth),
      height: 240,
      series: series,
      scales: {
        x: { time: true },
        y: { range: function (u, min, max) { return [Math.min(0, min), max > 0 ? max * 1.15 : 1]; } }
      },
      axes: [{ stroke: '#6b7280', grid: { stroke: '#f0f0f0' } },
        { stroke: '#6b7280', size: 56, grid: { stroke: '#f0f0f0' }, values: function (u, vals) { return vals.map(compact); } }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } }
    };
    this.u = new uPlot(opts, data, el);
  };

  function initCharts(root) {
    root.querySelectorAll('[data-chart]').forEach(function (el) {
      if (!el._chart) new Chart(el);
    });
  }

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      document.querySelectorAll('[data-chart]').forEach(function (el) {
        if (el._chart && el._chart.u) el._chart.u.setSize({ width: Math.max(300, el.clientWidth), height: 240 });
      });
    }, 150);
  });

  document.addEventListener('DOMContentLoaded', function () { initCharts(document); });
})();
