-- wrk script: one new conversion per request (unique txid), on the click in $CLICK_ID.
local counter = 0
local prefix = tostring(math.random(1, 1e9))
local click = os.getenv("CLICK_ID") or "no-click"
request = function()
  counter = counter + 1
  return wrk.format("GET", "/postback?cid=" .. click .. "&txid=" .. prefix .. "-" .. counter
    .. "&payout=1.25&status=approved&currency=USD")
end
