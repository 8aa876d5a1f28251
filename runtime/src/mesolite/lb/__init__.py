"""`mesolite lb`: a marathon-lb compatible load balancer that follows Marathon and drives a real HAProxy.

- `labels.py`: marathon-lb's label contract (`HAPROXY_GROUP`, `HAPROXY_{n}_*`) read into one `ServiceSettings`
  per exposed service port;
- `model.py`: what HAProxy should serve, computed from Marathon's apps and tasks (which tasks may take traffic);
- `render.py`: the HAProxy configuration text, with server slots so that scaling needs no reload;
- `haproxy.py`: the HAProxy process (master-worker), validation, hitless reloads; `runtime_api.py`: server
  changes over the stats socket without a reload;
- `marathon_events.py`: the `/v2/events` stream and the full syncs of `/v2/apps?embed=apps.tasks`;
- `service.py`: the flags and the loop that applies every change (and logs it).
"""
