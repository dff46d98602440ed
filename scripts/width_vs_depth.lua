-- width_vs_depth.lua: prune the same model to a similar size by removing MLP
-- neurons or whole layers, compare what each keeps, and write a PDF report.
--   pfrun scripts/width_vs_depth.lua [MODEL] [OUTPUT_DIR]
local model_path = arg[1] or "synthetic:llama-small"
local out = arg[2] or "runs/width_vs_depth"

local base <close> = pf.load{ path = model_path }
local depth <close>, ds = pf.prune_depth{ model = base, num_layers_to_remove = 1 }
-- find the width percentage whose parameter count is closest to the depth-pruned one
local best_pct, best_gap = nil, math.huge
for pct = 5, 95, 5 do
  local m <close> = pf.prune_width{ model = base, pruning_percentage = pct }
  local gap = math.abs(m.parameters - depth.parameters)
  if gap < best_gap then best_pct, best_gap = pct, gap end
end
local width <close>, ws = pf.prune_width{ model = base, pruning_percentage = best_pct }
print(string.format("base   %12d parameters, %d layers", base.parameters, base.num_hidden_layers))
print(string.format("depth  %12d parameters (-%.2f%%), %d layers", depth.parameters,
                    ds.percentage_reduction, depth.num_hidden_layers))
print(string.format("width  %12d parameters (-%.2f%%), %d%% of each MLP removed", width.parameters,
                    ws.percentage_reduction, best_pct))
pf.save{ model = depth, path = out .. "/depth", overwrite = true }
pf.save{ model = width, path = out .. "/width", overwrite = true }
local rows = {
  { variant = "base", parameters = base.parameters, layers = base.num_hidden_layers,
    reduction_percent = 0 },
  { variant = "depth (1 layer removed)", parameters = depth.parameters,
    layers = depth.num_hidden_layers, reduction_percent = ds.percentage_reduction },
  { variant = string.format("width (%d%% of each MLP)", best_pct), parameters = width.parameters,
    layers = width.num_hidden_layers, reduction_percent = ws.percentage_reduction },
}
local rep = pf.report{ path = out .. "/report.pdf", title = "Width vs depth: " .. base.name,
                       table = rows }
print("report " .. rep.path)
