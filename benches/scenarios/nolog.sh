# The core gateway with the access log off (to show the log's share).
sed -i 's/access_log: access.log/access_log: off/' "$WORK/gw/gateway.yaml"
