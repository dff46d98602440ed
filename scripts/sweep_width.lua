-- sweep_width.lua: one load, every static method x several percentages, a table
-- of the resulting sizes, the best-compressed variant saved, and a PDF report.
--   pfrun scripts/sweep_width.lua [MODEL] [OUTPUT_DIR]
local model_path = arg[1] or "synthetic:llama-small"
local out = arg[2] or "runs/sweep_width"

local base <close> = pf.load{ path = model_path }
print(string.format("%s: %d layers, %d parameters", base.name, base.num_hidden_layers,
                    base.parameters))
print(string.format("%-6s %5s %14s %10s %12s", "method", "pct", "parameters", "reduction",
                    "expansion"))
local rows = {}
for _, method in ipairs{ "MAW", "VOW", "PON", "L2" } do
  for _, pct in ipairs{ 10, 20, 30, 40 } do
    -- pruned variants share every unchanged tensor with `base`
    local m <close>, s = pf.prune_width{ model = base, method = method,
                                         pruning_percentage = pct }
    print(string.format("%-6s %5d %14d %9.2f%% %11.2f%%", method, pct, m.parameters,
                        s.percentage_reduction, s.expansion_rate))
    rows[#rows + 1] = { method = method, pruning_percentage = pct, parameters = m.parameters,
                        reduction_percent = s.percentage_reduction,
                        expansion_rate = s.expansion_rate }
  end
end
local best <close> = pf.prune_width{ model = base, method = "MAW", pruning_percentage = 40,
                                     expansion_divisor = 32 }
pf.save{ model = best, path = out .. "/maw40-div32", overwrite = true }
print("saved " .. out .. "/maw40-div32")
local rep = pf.report{ path = out .. "/report.pdf", title = "Width pruning sweep: " .. base.name,
                       table = rows }
print("report " .. rep.path)
