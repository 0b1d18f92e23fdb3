# Request inspection's cost: inspection on every route (block mode, paranoia 1) against the same
# gateway with inspection off, in the same alternating rounds. With REQUEST=json2k every request
# carries the 2 KiB JSON body of benches/filters.rs, which inspection walks value by value.
sed -i "1i inspection: {mode: block}" "$WORK/gw/policies/bench.yaml"
COMPARE_NAME="inspection off"
COMPARE_SED='s/^$//'
COMPARE_POLICY_SED='s/^inspection: {mode: block}$/inspection: {mode: off}/'
