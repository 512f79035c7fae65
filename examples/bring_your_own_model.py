"""Bring your own model: a torchvision ResNet-18 trained by your own loop on CIFAR-10, attacked by
robustcv from Python, with the report ``robustcv attack`` writes; then exported, so that

    robustcv attack --model-file resnet18.pt2 --dataset cifar10 --data-root data --eps 1/255,4/255,8/255 --n 200

gives the same numbers. Run it where ``data/cifar-10-batches-py`` holds the CIFAR-10 python files
(nothing is downloaded): ``python examples/bring_your_own_model.py``. The first block is the
README's example, line for line (tests/test_api.py checks it and runs this file).
"""
import robustcv, torch, torchvision
from torchvision.transforms import ToTensor
train = torchvision.datasets.CIFAR10("data", train=True, transform=ToTensor())   # images in [0, 1]
net = robustcv.with_normalization(torchvision.models.resnet18(num_classes=10),
                                  mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
for x, y in torch.utils.data.DataLoader(train, 128, shuffle=True):                # one epoch
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
results = robustcv.evaluate(net, "cifar10", data_root="data", eps=["1/255", "4/255", "8/255"], n=200, name="resnet18")
results.report("reports/resnet18")                                        # report.html + report.md

print({eps: round(value, 3) for eps, value in results.robust_accuracy().items()})
torch.export.save(torch.export.export(net.eval(), (torch.rand(2, 3, 32, 32),),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},)), "resnet18.pt2")
