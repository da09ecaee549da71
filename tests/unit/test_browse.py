"""BrowseService: paging with continuation points, BrowseNext, release, limits (Part 4 §5.8), in-process."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from asyncua import Server, ua

from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.services.browse import BrowseService
from bridge.wincc.models import DataType, Folder, TagInfo

pytestmark = pytest.mark.asyncio(loop_scope="module")

N = 2_500
FORWARD, INVERSE, BOTH = ua.BrowseDirection.Forward, ua.BrowseDirection.Inverse, ua.BrowseDirection.Both
HIERARCHICAL = ua.NodeId(ua.ObjectIds.HierarchicalReferences)
SC = ua.StatusCodes


class FakeSession:
    """Stands in for a BridgeSession: the service only needs a hashable, weak-referenceable key."""


class Model:
    def __init__(self, server: Server, space: AddressSpace) -> None:
        self.server = server
        self.space = space
        self.big = space.directory.folder_node_id(("Big",))
        self.small = space.directory.folder_node_id(("Small",))
        self.names = [f"Big.T{i:05d}" for i in range(N)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def model() -> Model:
    server = Server()
    await server.init()
    ns = [await server.register_namespace("urn:browse" + s) for s in ("", "/folders", "/bridge")]
    space = AddressSpace(server, TagDirectory(*ns))
    items: list[Folder | TagInfo] = [Folder(("Big",)), Folder(("Small",))]
    items += [TagInfo(f"Big.T{i:05d}", DataType.int32, ("Big",)) for i in range(N)]
    items += [TagInfo("Small.A", DataType.float, ("Small",), unit="bar"), TagInfo("Small.B", DataType.bool, ("Small",))]
    await space.build(items)
    return Model(server, space)


def desc(
    node_id: ua.NodeId,
    direction: ua.BrowseDirection = FORWARD,
    ref_type: ua.NodeId = HIERARCHICAL,
    subtypes: bool = True,
    class_mask: int = 0,
    result_mask: int = 0x3F,
) -> ua.BrowseDescription:
    return ua.BrowseDescription(
        NodeId=node_id,
        BrowseDirection=direction,
        ReferenceTypeId=ref_type,
        IncludeSubtypes=subtypes,
        NodeClassMask=class_mask,
        ResultMask=result_mask,
    )


async def browse(
    svc: BrowseService, session: Any, *descs: ua.BrowseDescription, max_refs: int = 0
) -> list[ua.BrowseResult]:
    return await svc.browse(
        session, ua.BrowseParameters(NodesToBrowse=list(descs), RequestedMaxReferencesPerNode=max_refs)
    )


async def browse_next(
    svc: BrowseService, session: Any, *points: bytes | None, release: bool = False
) -> list[ua.BrowseResult]:
    return await svc.browse_next(
        session, ua.BrowseNextParameters(ReleaseContinuationPoints=release, ContinuationPoints=list(points))
    )


async def browse_all(svc: BrowseService, session: Any, node_id: ua.NodeId, max_refs: int) -> tuple[list[Any], int]:
    result = (await browse(svc, session, desc(node_id), max_refs=max_refs))[0]
    result.StatusCode.check()
    found, calls = list(result.References), 1
    point = result.ContinuationPoint
    while point:
        assert calls < 10_000
        nxt = (await browse_next(svc, session, point))[0]
        nxt.StatusCode.check()
        found += nxt.References
        point, calls = nxt.ContinuationPoint, calls + 1
    return found, calls


# ---- paging -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_refs,pages", [(100, 25), (1000, 3), (2500, 1), (7, 358)])
async def test_pages_cover_the_folder_exactly_once(model: Model, max_refs: int, pages: int) -> None:
    svc = BrowseService(model.server, max_references_per_node=5000)
    session = FakeSession()
    found, calls = await browse_all(svc, session, model.big, max_refs)
    assert calls == pages
    assert [r.NodeId.Identifier for r in found] == model.names
    assert svc.continuation_points(session) == 0  # the last page frees its continuation point


async def test_no_client_limit_still_pages_at_the_server_limit(model: Model) -> None:
    svc = BrowseService(model.server, max_references_per_node=1000)
    session = FakeSession()
    first = (await browse(svc, session, desc(model.big), max_refs=0))[0]
    assert len(first.References) == 1000 and first.ContinuationPoint
    found, calls = await browse_all(svc, session, model.big, 0)
    assert calls == 3 and len(found) == N
    # a client asking for more than the server gives gets the server's page size, still correct
    first = (await browse(svc, FakeSession(), desc(model.big), max_refs=100_000))[0]
    assert len(first.References) == 1000


async def test_small_answers_have_no_continuation_point(model: Model) -> None:
    svc = BrowseService(model.server)
    session = FakeSession()
    result = (await browse(svc, session, desc(model.small), max_refs=10))[0]
    assert result.StatusCode.is_good()
    assert [r.NodeId.Identifier for r in result.References] == ["Small.A", "Small.B"]
    assert result.ContinuationPoint is None
    assert svc.continuation_points(session) == 0


async def test_several_nodes_in_one_request_page_independently(model: Model) -> None:
    svc = BrowseService(model.server)
    session = FakeSession()
    big, small = await browse(svc, session, desc(model.big), desc(model.small), max_refs=1000)
    assert len(big.References) == 1000 and big.ContinuationPoint
    assert len(small.References) == 2 and small.ContinuationPoint is None


async def test_snapshot_is_consistent_while_the_model_changes(model: Model) -> None:
    svc = BrowseService(model.server)
    session = FakeSession()
    first = (await browse(svc, session, desc(model.big), max_refs=1000))[0]
    refs = model.server.iserver.aspace[model.big].references
    saved = list(refs)
    refs.reverse()  # e.g. a re-browse rewrites the folder meanwhile
    try:
        rest = (await browse_next(svc, session, first.ContinuationPoint))[0]
    finally:
        refs[:] = saved
    assert [r.NodeId.Identifier for r in first.References + rest.References] == model.names[:2000]


# ---- continuation point life cycle --------------------------------------------------------------------------------
async def test_used_released_or_foreign_points_are_invalid(model: Model) -> None:
    svc = BrowseService(model.server)
    alice, bob = FakeSession(), FakeSession()
    point = (await browse(svc, alice, desc(model.big), max_refs=100))[0].ContinuationPoint
    assert (await browse_next(svc, bob, point))[0].StatusCode.value == SC.BadContinuationPointInvalid
    nxt = (await browse_next(svc, alice, point))[0]
    assert nxt.StatusCode.is_good() and nxt.ContinuationPoint != point
    assert (await browse_next(svc, alice, point))[0].StatusCode.value == SC.BadContinuationPointInvalid
    released = await browse_next(svc, alice, nxt.ContinuationPoint, release=True)
    assert released[0].StatusCode.is_good() and released[0].References == []
    assert svc.continuation_points(alice) == 0
    assert (await browse_next(svc, alice, nxt.ContinuationPoint))[0].StatusCode.value == SC.BadContinuationPointInvalid
    assert (await browse_next(svc, alice, b"made-up", None))[0].StatusCode.value == SC.BadContinuationPointInvalid


async def test_session_release_drops_its_points(model: Model) -> None:
    svc = BrowseService(model.server)
    session = FakeSession()
    point = (await browse(svc, session, desc(model.big), max_refs=100))[0].ContinuationPoint
    svc.release(session)
    assert svc.continuation_points(session) == 0
    assert (await browse_next(svc, session, point))[0].StatusCode.value == SC.BadContinuationPointInvalid
    svc.release(FakeSession())  # a session that never browsed


async def test_oldest_point_of_an_earlier_request_is_freed(model: Model) -> None:
    svc = BrowseService(model.server, max_continuation_points=3)
    session = FakeSession()
    points = [(await browse(svc, session, desc(model.big), max_refs=10))[0].ContinuationPoint for _ in range(4)]
    assert svc.continuation_points(session) == 3
    assert (await browse_next(svc, session, points[0]))[0].StatusCode.value == SC.BadContinuationPointInvalid
    for point in points[1:]:
        assert (await browse_next(svc, session, point))[0].StatusCode.is_good()


async def test_one_request_needing_too_many_points_gets_bad_no_continuation_points(model: Model) -> None:
    svc = BrowseService(model.server, max_continuation_points=2)
    session = FakeSession()
    results = await browse(svc, session, desc(model.big), desc(model.big), desc(model.big), max_refs=10)
    assert [r.StatusCode.value for r in results] == [SC.Good, SC.Good, SC.BadNoContinuationPoints]
    assert results[2].References == []
    assert all(r.ContinuationPoint for r in results[:2])


async def test_max_continuation_points_is_advertised(model: Model) -> None:
    BrowseService(model.server, max_continuation_points=7)
    node = model.server.get_node(ua.ObjectIds.Server_ServerCapabilities_MaxBrowseContinuationPoints)
    assert await node.read_value() == 7


# ---- filters and errors -----------------------------------------------------------------------------------------
async def test_direction_reference_type_and_node_class_filters(model: Model) -> None:
    svc = BrowseService(model.server)
    session = FakeSession()
    small_a = model.space.directory.node_id("Small.A")
    up = (await browse(svc, session, desc(small_a, INVERSE)))[0].References
    assert [r.NodeId for r in up] == [model.small]
    everything = (await browse(svc, session, desc(small_a, BOTH, ref_type=ua.NodeId())))[0].References
    types = {r.ReferenceTypeId.Identifier for r in everything}
    assert types == {ua.ObjectIds.Organizes, ua.ObjectIds.HasTypeDefinition, ua.ObjectIds.HasProperty}
    props = (await browse(svc, session, desc(small_a, ref_type=ua.NodeId(ua.ObjectIds.HasProperty), subtypes=False)))[
        0
    ].References
    assert sorted(r.BrowseName.Name for r in props) == ["EURange", "EngineeringUnits"]
    # HierarchicalReferences without subtypes matches nothing: the references are Organizes/HasProperty
    assert (await browse(svc, session, desc(model.small, subtypes=False)))[0].References == []
    objects_only = (await browse(svc, session, desc(model.space.root_node_id, class_mask=ua.NodeClass.Object)))[
        0
    ].References
    assert {r.NodeId for r in objects_only} == {model.big, model.small}
    variables = (await browse(svc, session, desc(model.space.root_node_id, class_mask=ua.NodeClass.Variable)))[
        0
    ].References
    assert variables == []


async def test_result_mask_leaves_unrequested_fields_empty(model: Model) -> None:
    svc = BrowseService(model.server)
    only_names = 0x08 | 0x10
    ref = (await browse(svc, FakeSession(), desc(model.small, result_mask=only_names)))[0].References[0]
    assert ref.BrowseName.Name == "A" and ref.DisplayName.Text == "A"
    assert ref.NodeId == model.space.directory.node_id("Small.A")
    assert ref.ReferenceTypeId.is_null() and ref.NodeClass == ua.NodeClass.Unspecified
    assert ua.NodeId(ref.TypeDefinition.Identifier, ref.TypeDefinition.NamespaceIndex).is_null()
    # the stored reference itself is untouched
    full = (await browse(svc, FakeSession(), desc(model.small)))[0].References[0]
    assert full.ReferenceTypeId == ua.NodeId(ua.ObjectIds.Organizes)


async def test_bad_nodes_get_their_status_and_the_rest_still_answers(model: Model) -> None:
    svc = BrowseService(model.server)
    unknown = ua.NodeId("nope", model.space.directory.tag_ns)
    not_a_ref_type = model.small
    results = await browse(
        svc, FakeSession(), desc(unknown), desc(model.small, ref_type=not_a_ref_type), desc(model.small)
    )
    assert [r.StatusCode.value for r in results] == [SC.BadNodeIdUnknown, SC.BadReferenceTypeIdInvalid, SC.Good]
    assert len(results[2].References) == 2


async def test_service_level_errors(model: Model) -> None:
    svc = BrowseService(model.server)
    with pytest.raises(ua.UaStatusCodeError) as err:
        await browse(svc, FakeSession())
    assert err.value.code == SC.BadNothingToDo
    with pytest.raises(ua.UaStatusCodeError) as err:
        await browse_next(svc, FakeSession())
    assert err.value.code == SC.BadNothingToDo
    params = ua.BrowseParameters(NodesToBrowse=[desc(model.small)])
    params.View.ViewId = ua.NodeId(12345, 0)
    with pytest.raises(ua.UaStatusCodeError) as err:
        await svc.browse(FakeSession(), params)
    assert err.value.code == SC.BadViewIdUnknown
    too_many = ua.BrowseParameters(NodesToBrowse=[desc(model.small)] * 10_001)
    with pytest.raises(ua.UaStatusCodeError) as err:
        await svc.browse(FakeSession(), too_many)
    assert err.value.code == SC.BadTooManyOperations


async def test_limits_must_be_positive() -> None:
    class Fake:
        class iserver:  # noqa: N801 - mimics the attribute path
            aspace = None

    with pytest.raises(ValueError):
        BrowseService(Fake(), max_references_per_node=0)  # type: ignore[arg-type]
