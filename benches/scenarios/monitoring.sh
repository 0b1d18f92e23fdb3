# Monitoring's cost: the core gateway with statistics, request metrics and alert evaluation on
# (evaluated every second, harsher than the 10 s default) against the same gateway with them off,
# in the same alternating rounds. The access log is off in both, so only monitoring differs.
printf 'monitoring: {enabled: true, resolution: 10s, evaluate_every: 1s}\n' >> "$WORK/gw/gateway.yaml"
sed -i 's/access_log: access.log/access_log: off/' "$WORK/gw/gateway.yaml"
COMPARE_NAME="monitoring off"
COMPARE_SED='s/monitoring: {enabled: true/monitoring: {enabled: false/'
