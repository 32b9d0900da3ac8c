"""How much does a yume15 denoiser's rollout depend on its actions? 16-tick rollouts (event CFG 2) of 30
held-out walks under their own actions, under none, and with Left/Right swapped; the RMS latent distance
between them beside the ground truth's own motion per tick (on the ticks that turn, too).

    python3 probe_actions.py CKPT [CKPT ...]     # e.g. ckpt/yume15_fp16.pt ckpt/yume15_actions_fp16.pt

Reads the captions stage's tables from $YUME15_CKPT (default /work/ckpt/yume15) and the latents from
$GEN_CKPT (default /work/ckpt/gen), as train_yume15.py does."""
import os, sys, types, numpy as np, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_yume15 as T
args = types.SimpleNamespace(ckpt=os.environ.get("YUME15_CKPT", "/work/ckpt/yume15"),
                             latents=os.environ.get("GEN_CKPT", "/work/ckpt/gen"))
texts, emb, qcm = T.load_tables(args)
val, _ = T.load_split(args, "val")
val = val[:30]
H = 16
z0 = torch.from_numpy(np.stack([v["z"][0] for v in val]))
acts = np.stack([v["a"][:H] for v in val]).astype(np.float32)
et = emb[torch.from_numpy(np.stack([T.event_ids(v, texts, 0, None)[1:H + 1] for v in val]))]
none = np.zeros_like(acts)
swap = acts.copy(); L, R = T.KEYS.index("Left"), T.KEYS.index("Right")
swap[..., L], swap[..., R] = acts[..., R], acts[..., L]
gt = torch.from_numpy(np.stack([v["z"][1:H + 1] for v in val]))
gtprev = torch.from_numpy(np.stack([v["z"][0:H] for v in val]))
turning = (acts[..., L] + acts[..., R]) > 0
print("turning ticks", turning.mean())
for name in sys.argv[1:]:
    m = T.load_model(torch.load(name)).eval()
    a = T.rollout(m, z0, acts, et, qcm, H, we=2.0)
    b = T.rollout(m, z0, none, et, qcm, H, we=2.0)
    c = T.rollout(m, z0, swap, et, qcm, H, we=2.0)
    d = lambda x, y: ((x - y) ** 2).mean((2, 3, 4)).sqrt().numpy()
    mot = d(gt, gtprev)
    print(name, "GT motion/tick %.3f (turning %.3f)" % (mot.mean(), mot[turning].mean()),
          "| gen motion/tick %.3f" % d(a[:, 1:], a[:, :-1]).mean(),
          "| own vs none %.3f, own vs L/R swapped %.3f (turning ticks %.3f)" % (d(a, b).mean(), d(a, c).mean(), d(a, c)[turning].mean()),
          "| err to GT own %.3f" % d(a, gt).mean(), flush=True)
